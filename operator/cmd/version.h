/*
 * cmd/version — `vmdrain version`: the version, the source revision, the
 * build date and the versions of the libraries the binary runs with.
 *
 * Part of the composition root.
 */
#ifndef VMDRAIN_CMD_VERSION_H
#define VMDRAIN_CMD_VERSION_H

#include <stddef.h>

/* Runs `vmdrain version` (argv[0] is "version"; it takes no arguments).
 * Returns the exit code: 0, or 2 for an argument. */
int cmd_version_main(int argc, char **argv);

/* The libraries' versions as one line ("libcurl 8.5.0, OpenSSL 3.0.15,
 * ..."), into out (n bytes). */
void cmd_library_versions(char *out, size_t n);

#endif
