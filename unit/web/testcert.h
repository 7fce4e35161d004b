/*
 * testcert — self-signed certificates for the webhook tests and benchmark.
 *
 * Each call makes a fresh EC P-256 key and a certificate for CN=localhost
 * with subjectAltNames DNS:localhost and IP:127.0.0.1, valid from a minute
 * ago for a day, with the serial given, and writes both as PEM files.
 */
#ifndef VMDRAIN_UNIT_TESTCERT_H
#define VMDRAIN_UNIT_TESTCERT_H

/* Writes the certificate to cert_path and its key to key_path (replacing
 * them in place). Returns 0 or -1. */
int testcert_write(const char *cert_path, const char *key_path, long serial);

/* Writes only a new certificate (serial given) for a fresh key, so that it
 * does not match the key already in some key file. Returns 0 or -1. */
int testcert_write_cert_only(const char *cert_path, long serial);

#endif
