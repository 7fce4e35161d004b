/*
 * kubectl-vmdrain — the kubectl plugin of vmdrain (`kubectl vmdrain
 * status|drain|cancel`): the composition root of the second binary, which
 * shares operator/kube and operator/util with vmdrain. Calls cmd/plugin
 * only.
 */
#include "cmd/plugin.h"

int main(int argc, char **argv)
{
    return cmd_plugin_main(argc, argv);
}
