#include "testcert.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>

/* A self-signed certificate for key, owned by the caller, or NULL. */
static X509 *make_cert(EVP_PKEY *key, long serial)
{
    X509 *x = X509_new();
    X509_NAME *name;
    X509_EXTENSION *san;
    X509V3_CTX v3;

    if (!x)
        return NULL;
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    san = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
    if (!san || !X509_add_ext(x, san, -1) || !X509_sign(x, key, EVP_sha256())) {
        X509_EXTENSION_free(san);
        X509_free(x);
        return NULL;
    }
    X509_EXTENSION_free(san);
    return x;
}

static int write_cert(const char *path, X509 *x)
{
    FILE *f = fopen(path, "w");
    int ok;

    if (!f)
        return -1;
    ok = PEM_write_X509(f, x);
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

static int write_key(const char *path, EVP_PKEY *key)
{
    FILE *f = fopen(path, "w");
    int ok;

    if (!f)
        return -1;
    ok = PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

/* Makes a key and certificate; writes the certificate, and the key when
 * key_path is not NULL. */
static int generate(const char *cert_path, const char *key_path, long serial)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = key ? make_cert(key, serial) : NULL;
    int rc = -1;

    if (x && write_cert(cert_path, x) == 0 && (!key_path || write_key(key_path, key) == 0))
        rc = 0;
    X509_free(x);
    EVP_PKEY_free(key);
    return rc;
}

int testcert_write(const char *cert_path, const char *key_path, long serial)
{
    return generate(cert_path, key_path, serial);
}

int testcert_write_cert_only(const char *cert_path, long serial)
{
    return generate(cert_path, NULL, serial);
}
