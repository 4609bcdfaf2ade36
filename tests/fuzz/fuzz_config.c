/* `ctrain train --config FILE`: the input is the JSON file, applied by the
 * CLI's option engine (tools/cli_*.c, with train's table) and checked as
 * cmd_train checks it. Promises: any file is applied or refused with an
 * exit code (never a fault); and when it is accepted, the record of given
 * options - what a checkpoint carries as cli.options and --resume applies
 * again - is accepted by a fresh parser and comes back the same. */
#include <string.h>

#include "cli.h"
#include "cli_options.h"
#include "train_opts.h"

#include "fuzz_util.h"

/* Applies the record to fresh options; returns the record it makes. */
static char *reapply(const char *record) {
    train_cfg c;
    train_cfg_defaults(&c);
    cli_parser p;
    cli_parser_init(&p, &train_table, &c, true);
    const char *path = fuzz_write(1, ".json", (const uint8_t *)record, strlen(record));
    int rc = cli_apply_config_file(&p, path);
    FUZZ_PROMISE(rc == CLI_EXIT_OK, "a recorded set of options is accepted again");
    char *again = cli_given_json(&p);
    cli_parser_free(&p);
    return again;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    const char *path = fuzz_write(0, ".json", data, n);
    train_cfg c;
    train_cfg_defaults(&c);
    cli_parser p;
    cli_parser_init(&p, &train_table, &c, true);
    int rc = cli_apply_config_file(&p, path);
    FUZZ_PROMISE(rc == CLI_EXIT_OK || rc == CLI_EXIT_USAGE || rc == CLI_EXIT_FAIL, "a known exit code");
    if (rc == CLI_EXIT_OK) {
        rc = train_check_options(&c);
        FUZZ_PROMISE(rc == CLI_EXIT_OK || rc == CLI_EXIT_USAGE, "the checks give a known exit code");
        char *record = cli_given_json(&p);
        FUZZ_PROMISE(record != NULL, "the record is made");
        char *again = reapply(record);
        FUZZ_PROMISE(again && strcmp(record, again) == 0, "the record of options comes back the same");
        free(again);
        free(record);
    }
    cli_parser_free(&p);
    return 0;
}
