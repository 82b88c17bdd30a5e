/* yinian-voice — the terminal's voice lines, for technicians and for
 * tools/make-clips:
 *   yinian-voice list          every clip: "name<TAB>Chinese text"
 *   yinian-voice amount FEN    the clips that read an amount, e.g. 9550
 * Exit: 0 done, 2 bad command line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "voice.h"

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "list") == 0) {
        for (int i = 0; yn_voice_clips[i]; i++)
            printf("%s\t%s\n", yn_voice_clips[i], yn_voice_clip_text(yn_voice_clips[i]));
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "amount") == 0) {
        char *end;
        long long fen = strtoll(argv[2], &end, 10);
        if (*end || !argv[2][0]) {
            fprintf(stderr, "yinian-voice: '%s' is not a whole number of fen\n", argv[2]);
            return 2;
        }
        yn_phrase p = {0};
        yn_voice_amount(&p, fen);
        for (int i = 0; i < p.n; i++)
            printf("%s%s", i ? " " : "", p.clips[i]);
        printf("\n");
        return 0;
    }
    fprintf(stderr, "usage: yinian-voice list | yinian-voice amount FEN\n");
    return 2;
}
