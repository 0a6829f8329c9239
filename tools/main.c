/* hookformer: the command-line tool. Dispatches on the subcommand; each lives in cmd_*.c. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "dist.h"
#include "hookformer.h"

static const cli_command *const commands[] = {&cmd_run, &cmd_info, &cmd_generate, &cmd_hooks,
                                              &cmd_estimate, &cmd_cache, &cmd_inspect,
                                              &cmd_embed, &cmd_tokenize, &cmd_patch, &cmd_ablate,
                                              &cmd_steer, &cmd_lens, &cmd_sae, &cmd_features};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void print_usage(FILE *f) {
    fprintf(f,
            "usage: hookformer <command> [options]\n"
            "       hookformer help <command>\n"
            "       hookformer --version\n"
            "\n"
            "A transformer runtime for mechanistic interpretability.\n"
            "\n"
            "commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-8s %s\n", commands[i]->name, commands[i]->summary);
    fprintf(f, "  %-8s %s\n", "help", "Show the options of a command.");
    fprintf(f,
            "\n"
            "options:\n"
            "  -h, --help   show this help and exit\n"
            "  --version    print the version and exit\n"
            "\n"
            "Run 'hookformer <command> --help' for a command's options.\n"
            "Exit status: 0 success, 1 runtime error (e.g. a model that does not load),\n"
            "2 usage error.\n");
}

static const cli_command *find_command(const char *name) {
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i]->name, name) == 0) return commands[i];
    return NULL;
}

static int unknown_command(const char *name) {
    fprintf(stderr, "hookformer: unknown command '%s' (see 'hookformer --help')\n", name);
    return CLI_EXIT_USAGE;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        print_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *first = argv[1];
    if (strcmp(first, "--help") == 0 || strcmp(first, "-h") == 0) {
        print_usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(first, "--version") == 0) {
        printf("hookformer %s\n", hk_version());
        return CLI_EXIT_OK;
    }
    if (strcmp(first, "help") == 0) {
        if (argc == 2) {
            print_usage(stdout);
            return CLI_EXIT_OK;
        }
        if (argc > 3) {
            fprintf(stderr, "hookformer help: expected one command name, got %d arguments\n",
                    argc - 2);
            return CLI_EXIT_USAGE;
        }
        const cli_command *cmd = find_command(argv[2]);
        if (!cmd) return unknown_command(argv[2]);
        cli_print_help(cmd, stdout);
        return CLI_EXIT_OK;
    }
    if (first[0] == '-') {
        fprintf(stderr, "hookformer: unknown option '%s' (see 'hookformer --help')\n", first);
        return CLI_EXIT_USAGE;
    }
    const cli_command *cmd = find_command(first);
    if (!cmd) return unknown_command(first);
    /* under mpirun / srun: cache, patch and ablate split their work (tools/dist.h) */
    int rc = cli_dist_start(cmd->name);
    if (rc) return rc;
    return cli_dist_finish(cmd->main(cmd, argc - 1, argv + 1));
}
