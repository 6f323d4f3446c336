// SPDX-License-Identifier: BSD-2-Clause
/*
 * tollctl status: the kernel fast path as GET /api/v1/kernel reports it: mode, ABI version,
 * pin directory and how the maps were found, the interfaces and how the programs are
 * attached, the per-verdict packet counters (those not zero; all with --json) and the
 * penalty box (up to --limit sources).
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollctl.h"

static void print_ifaces(const cJSON *arr)
{
	const cJSON *f;

	printf("interfaces:\n");
	if (cJSON_GetArraySize(arr) == 0)
		printf("  (none)\n");
	cJSON_ArrayForEach(f, arr)
	{
		const cJSON *xdp = cJSON_GetObjectItemCaseSensitive(f, "xdp");

		printf("  ");
		out_clean(stdout, json_str(f, "name"));
		printf("  %s%s%s%s\n",
		       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(f, "tc")) ? "TC ingress"
									       : "no TC",
		       cJSON_IsString(xdp) ? ", XDP " : ", no XDP",
		       cJSON_IsString(xdp) ? xdp->valuestring : "",
		       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(f, "clsact_created"))
			   ? " (clsact qdisc created by tollgated)"
			   : "");
	}
}

static void print_verdicts(const cJSON *o)
{
	const cJSON *v;
	int shown = 0;

	printf("packets by verdict (summed over CPUs, zeros left out):\n");
	cJSON_ArrayForEach(v, o)
	{
		if (!cJSON_IsNumber(v) || v->valuedouble == 0)
			continue;
		printf("  %-16s %.0f\n", v->string, v->valuedouble);
		shown++;
	}
	if (!shown)
		printf("  (none counted yet)\n");
}

static int print_penalty(const cJSON *pb)
{
	static const struct out_col cols[] = {{"ADDRESS", "address"},
					      {"REFUSALS", "refusals"},
					      {"DROPPED", "dropped"},
					      {"STRIKES", "strikes"},
					      {"UNTIL", "until"}};
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(pb, "data");
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(pb, "entries");

	printf("penalty box: %.0f source(s)%s\n", cJSON_IsNumber(n) ? n->valuedouble : 0,
	       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pb, "truncated"))
		   ? " (list truncated: --limit)"
		   : "");
	if (cJSON_GetArraySize(data) == 0)
		return 0;
	return out_table(cols, sizeof(cols) / sizeof(cols[0]), data);
}

static int print_status(const cJSON *o)
{
	const char *mode = json_str(o, "mode");
	const cJSON *abi = cJSON_GetObjectItemCaseSensitive(o, "abi_version");
	const cJSON *slots = cJSON_GetObjectItemCaseSensitive(o, "slots");

	printf("kernel path: ");
	out_clean(stdout, mode ? mode : "unknown");
	printf(" (ABI version %.0f)\n", cJSON_IsNumber(abi) ? abi->valuedouble : 0);
	if (!mode || !strcmp(mode, "off")) {
		printf("nothing attached: the daemon enforces every limit itself\n");
		return 0;
	}
	printf("maps: ");
	out_clean(stdout, json_str(o, "maps"));
	printf(" under ");
	out_clean(stdout, json_str(o, "pin_dir"));
	printf(" (%.0f slots)\n", cJSON_IsNumber(slots) ? slots->valuedouble : 0);
	print_ifaces(cJSON_GetObjectItemCaseSensitive(o, "interfaces"));
	print_verdicts(cJSON_GetObjectItemCaseSensitive(o, "verdicts"));
	return print_penalty(cJSON_GetObjectItemCaseSensitive(o, "penalty_box"));
}

int ctl_status(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"limit", required_argument, NULL, 'l'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	long long limit = 20;
	char path[64];
	cJSON *json = NULL;
	int opt, rc = CTL_CONTINUE;

	optind = 0;
	while (rc == CTL_CONTINUE && (opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (opt != 'l')
			rc = ctl_common_opt(ctl, opt);
		else if (parse_count(optarg, &limit) || limit < 1 || limit > 10000)
			rc = ctl_usage_error(ctl, "--limit wants a whole number from 1 to 10000");
	}
	if (rc == CTL_CONTINUE)
		rc = ctl_args(ctl, argc, argv, NULL, NULL);
	if (rc != CTL_CONTINUE)
		return rc;
	snprintf(path, sizeof(path), "/api/v1/kernel?limit=%lld", limit);
	rc = ctl_request(ctl, "GET", path, NULL, true, &json);
	if (rc)
		return rc;
	if (ctl->json)
		rc = out_json(json) ? CTL_EXIT_INTERNAL : CTL_EXIT_OK;
	else
		rc = print_status(json) ? CTL_EXIT_INTERNAL : CTL_EXIT_OK;
	cJSON_Delete(json);
	return rc;
}
