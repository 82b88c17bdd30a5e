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
