/* testutil.c — temp directories and fixture files for tests. */
#include "testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *yn_test_srcdir(void)
{
    const char *s = getenv("YN_SRCDIR");
    return s && *s ? s : ".";
}

void yn_test_tmpdir(char *buf, size_t len)
{
    const char *base = getenv("TMPDIR");
    snprintf(buf, len, "%s/yn-test.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(buf)) {
        perror("mkdtemp");
        abort();
    }
}

bool yn_test_under_qemu(const char *why)
{
    const char *cross = getenv("YN_CROSS");
    if (!cross || strcmp(cross, "1") != 0)
        return false;
    fprintf(stderr, "skipped under qemu-user: %s\n", why);
    return true;
}

void yn_test_write(const char *dir, const char *name, const char *text, unsigned mode, char *buf,
                   size_t len)
{
    snprintf(buf, len, "%s/%s", dir, name);
    char *slash = strrchr(buf, '/');
    if (slash && slash != buf) {
        *slash = '\0';
        mkdir(buf, 0700); /* one level of sub-folder, e.g. keys/ */
        *slash = '/';
    }
    unlink(buf);
    int fd = open(buf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
        perror(buf);
        abort();
    }
    fchmod(fd, mode);
    close(fd);
}

yn_policy *yn_test_policy_ident(int manual_per_day)
{
    char path[1024], err[256];
    static char doc[65536], edited[65536 + 256];
    snprintf(path, sizeof path, "%s/firmware/policies/shenzhen-2025.json", yn_test_srcdir());
    FILE *in = fopen(path, "rb");
    size_t n = in ? fread(doc, 1, sizeof doc - 1, in) : 0;
    if (in)
        fclose(in);
    doc[n] = '\0';
    const char *at = strstr(doc, "  \"categories\"");
    if (!at)
        return NULL;
    snprintf(edited, sizeof edited,
             "%.*s  \"identity_only\": {\"offline_cap_fen\": 500},\n"
             "  \"manual_entry\": {\"per_terminal_day\": %d, \"offline_cap_fen\": 500},\n%s",
             (int)(at - doc), doc, manual_per_day, at);
    yn_policy *p = NULL;
    if (yn_policy_load(edited, strlen(edited), &p, err, sizeof err) != YN_OK)
        fprintf(stderr, "yn_test_policy_ident: %s\n", err);
    return p;
}

static bool line_has(const char *line, const char *text)
{
    char plain[YN_SCREEN_TEXT];
    size_t n = 0;
    for (const char *p = line; *p && n + 1 < sizeof plain; p++) {
        if ((unsigned char)p[0] == 0xC2 && (unsigned char)p[1] == 0xA0) {
            plain[n++] = ' ';
            p++;
        } else {
            plain[n++] = *p;
        }
    }
    plain[n] = '\0';
    return strstr(plain, text) != NULL;
}

bool yn_test_screen_has(const yn_screen *s, const char *text)
{
    for (int i = 0; i < s->n_lines; i++)
        if (line_has(s->lines[i].text, text))
            return true;
    return line_has(s->title, text) || line_has(s->footer, text);
}
