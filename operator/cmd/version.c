/*
 * cmd/version — see version.h. Asks each library for its version at run
 * time (the shared object loaded, not the headers built against).
 */
#include "cmd/version.h"

#include <curl/curl.h>
#include <ev.h>
#include <http_parser.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <yajl/yajl_version.h>
#include <yaml.h>

#ifndef VMDRAIN_VERSION
#define VMDRAIN_VERSION "unknown"
#endif
#ifndef VMDRAIN_REVISION
#define VMDRAIN_REVISION "unknown"
#endif
#ifndef VMDRAIN_BUILD_DATE
#define VMDRAIN_BUILD_DATE "unknown"
#endif

void cmd_library_versions(char *out, size_t n)
{
    const curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
    unsigned long hp = http_parser_version();
    int yv = yajl_version();
    snprintf(out, n,
             "libcurl %s, %s, libyaml %s, yajl %d.%d.%d, libev %d.%d, http-parser %lu.%lu.%lu",
             cv->version, OpenSSL_version(OPENSSL_VERSION), yaml_get_version_string(), yv / 10000,
             yv / 100 % 100, yv % 100, ev_version_major(), ev_version_minor(), (hp >> 16) & 255,
             (hp >> 8) & 255, hp & 255);
}

int cmd_version_main(int argc, char **argv)
{
    char libs[512];
    if (argc > 1) {
        fprintf(stderr, "vmdrain version: takes no arguments, not '%s'\n", argv[1]);
        return 2;
    }
    cmd_library_versions(libs, sizeof(libs));
    printf("vmdrain %s\nrevision: %s\nbuilt: %s\nlibraries: %s\n", VMDRAIN_VERSION,
           VMDRAIN_REVISION, VMDRAIN_BUILD_DATE, libs);
    return 0;
}
