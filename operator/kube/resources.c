/*
 * resources — see resources.h: the table of resources and their API paths.
 *
 * Owns a constant table. Calls util/buf (paths); called by the informers,
 * kube/writer and cmd/debug.
 */
#include "kube/resources.h"

#include <string.h>

static const kube_resource_t resources[] = {
    {"nodes", "node,no", KUBE_KIND_NODE, "/api/v1", "v1", false},
    {"pods", "pod,po", KUBE_KIND_POD, "/api/v1", "v1", true},
    {"configmaps", "configmap,cm", KUBE_KIND_CONFIGMAP, "/api/v1", "v1", true},
    {"virtualmachineinstances", "virtualmachineinstance,vmi,vmis", KUBE_KIND_VMI,
     "/apis/kubevirt.io/v1", "kubevirt.io/v1", true},
    {"virtualmachineinstancemigrations", "virtualmachineinstancemigration,vmim,vmims",
     KUBE_KIND_MIGRATION, "/apis/kubevirt.io/v1", "kubevirt.io/v1", true},
    {"migrationpolicies", "migrationpolicy", KUBE_KIND_MIGRATION_POLICY,
     "/apis/migrations.kubevirt.io/v1alpha1", "migrations.kubevirt.io/v1alpha1", false},
    {"kubevirts", "kubevirt,kv", KUBE_KIND_KUBEVIRT, "/apis/kubevirt.io/v1", "kubevirt.io/v1",
     true},
    {"leases", "lease", KUBE_KIND_LEASE, "/apis/coordination.k8s.io/v1", "coordination.k8s.io/v1",
     true},
    {"nodedrains", "nodedrain,nd", KUBE_KIND_NODEDRAIN, "/apis/vmdrain.io/v1alpha1",
     "vmdrain.io/v1alpha1", false},
};

#define NRESOURCES (sizeof(resources) / sizeof(resources[0]))

/* True when name is one of the comma-separated words of list. */
static bool in_list(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        if (len == n && strncmp(p, name, n) == 0)
            return true;
        p += len;
        if (*p == ',')
            p++;
    }
    return false;
}

const kube_resource_t *kube_resource_find(const char *name)
{
    for (size_t i = 0; i < NRESOURCES; i++)
        if (strcmp(resources[i].name, name) == 0 || in_list(resources[i].aliases, name))
            return &resources[i];
    return NULL;
}

const kube_resource_t *kube_resource_of_kind(kube_kind_t kind)
{
    for (size_t i = 0; i < NRESOURCES; i++)
        if (resources[i].kind == kind)
            return &resources[i];
    return NULL;
}

const char *kube_resource_names(void)
{
    return "nodes, pods, configmaps, virtualmachineinstances (vmi), "
           "virtualmachineinstancemigrations (vmim), migrationpolicies, kubevirts (kv), leases, "
           "nodedrains (nd)";
}

int kube_url_escape(buf_t *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            if (buf_append(out, &c, 1) < 0)
                return -1;
        } else {
            char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
            if (buf_append(out, esc, 3) < 0)
                return -1;
        }
    }
    return 0;
}

int kube_resource_path(const kube_resource_t *r, const char *ns, const char *name,
                       const char *subresource, buf_t *out)
{
    int rc = buf_puts(out, r->prefix);
    if (rc == 0 && r->namespaced && ns && *ns) {
        rc |= buf_puts(out, "/namespaces/");
        rc |= kube_url_escape(out, ns);
    }
    rc |= buf_printf(out, "/%s", r->name);
    if (rc == 0 && name) {
        rc |= buf_puts(out, "/");
        rc |= kube_url_escape(out, name);
        if (subresource)
            rc |= buf_printf(out, "/%s", subresource);
    }
    return rc ? -1 : 0;
}
