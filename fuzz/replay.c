/*
 * replay — runs a fuzz driver over every file of its seed corpus.
 *
 * Linked with each driver in place of libFuzzer's main, so that the normal
 * test run keeps every parser covered without a fuzzer: `replay DIR...`
 * feeds each regular file of each DIR to LLVMFuzzerTestOneInput once. A
 * crash or sanitizer report fails the run.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads a whole file into a fresh allocation owned by the caller. */
static uint8_t *slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    uint8_t *data = NULL;
    long n;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        data = malloc((size_t)n + 1);
        if (data && fread(data, 1, (size_t)n, f) != (size_t)n) {
            free(data);
            data = NULL;
        }
        *size = (size_t)n;
    }
    fclose(f);
    return data;
}

static int replay_dir(const char *dir, int *count)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    int rc = 0;

    if (n < 0) {
        fprintf(stderr, "replay: cannot read corpus %s\n", dir);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        size_t size = 0;

        snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
        free(names[i]);
        if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
            continue;
        uint8_t *data = slurp(path, &size);
        if (!data) {
            fprintf(stderr, "replay: cannot read %s\n", path);
            rc = -1;
            continue;
        }
        LLVMFuzzerTestOneInput(data, size);
        free(data);
        (*count)++;
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    int count = 0, rc = 0;

    for (int i = 1; i < argc; i++)
        if (replay_dir(argv[i], &count) < 0)
            rc = 1;
    printf("replay: %d inputs\n", count);
    if (count == 0) {
        fprintf(stderr, "replay: empty corpus\n");
        return 1;
    }
    return rc;
}
