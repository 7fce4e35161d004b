/*
 * cmd/leader — `vmdrain run`'s leader election: its flags, this replica's
 * identity, and the wiring of the elector (kube/leader) to the engine
 * (drain_controller_set_leading).
 */
#ifndef VMDRAIN_CMD_LEADER_H
#define VMDRAIN_CMD_LEADER_H

#include "drain/controller.h"
#include "kube/config.h"

#include <getopt.h>
#include <stdbool.h>

struct ev_loop;

typedef struct cmd_leader_flags {
    bool enabled;
    char ns[254], name[254]; /* the Lease; ns "" until cmd_leader_flags_finish() */
    double lease_duration, renew_deadline, retry_period;
} cmd_leader_flags_t;

/* getopt_long entries of the flags (codes 0x100 and up), ended by a NULL
 * name, to copy into the command's table. */
extern const struct option cmd_leader_options[];
#define CMD_LEADER_OPTIONS 5

#define CMD_LEADER_USAGE                                                                           \
    "  --leader-elect[=BOOL]    elect one leader on a Lease (default true); only the\n"            \
    "                           leader writes, every replica answers the webhook\n"                \
    "  --leader-elect-lease NAMESPACE/NAME  the Lease (default: POD_NAMESPACE, else the\n"         \
    "                           service account's namespace, else --config's; name vmdrain)\n"     \
    "  --leader-elect-lease-duration D  a leader is replaced this long after its last\n"           \
    "                           renew (default 15s; D as 15s, 1.5s, 500ms, 1m)\n"                  \
    "  --leader-elect-renew-deadline D  a leader that has not renewed for this long\n"             \
    "                           stops writing (default 10s; less than the duration)\n"             \
    "  --leader-elect-retry-period D  between two tries to take or renew (default 2s)\n"

void cmd_leader_flags_init(cmd_leader_flags_t *f);

/* Takes one leader-election flag (opt a code of cmd_leader_options).
 * Returns 1 when opt is not one of them, 0, or -1 for a bad value
 * (printed). */
int cmd_leader_take_flag(cmd_leader_flags_t *f, int opt, const char *arg);

/* Completes the flags once all are read: the Lease's namespace when none
 * was given (config_ns last), and the durations checked together.
 * Returns 0 or -1 (printed). */
int cmd_leader_flags_finish(cmd_leader_flags_t *f, const char *config_ns);

typedef struct cmd_leader cmd_leader_t;

/* Starts electing with its own transport on cfg; the controller leads
 * while the elector does. Returns NULL (logged) on failure. */
cmd_leader_t *cmd_leader_start(struct ev_loop *loop, kube_config_t *cfg,
                               const cmd_leader_flags_t *f, drain_controller_t *ctl);

/* Shutdown: stops leading (the engine's writes are fenced) and releases the
 * Lease; done(ud) runs once when that ended (maybe before returning). */
void cmd_leader_release(cmd_leader_t *l, void (*done)(void *ud), void *ud);

void cmd_leader_free(cmd_leader_t *l);

#endif
