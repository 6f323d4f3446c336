/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * GET /api/v1/kernel as JSON: the kernel fast path's mode, ABI version, pin directory, where
 * the programs are attached and how, the per-verdict counters (summed over CPUs, named after
 * enum tg_verdict) and the penalty box (up to a limit). With the kernel path off, the same
 * object with mode "off" and nothing attached.
 */
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "admin_internal.h"
#include "kernel.h"
#include "util.h"

static const char *origin_name(enum kernel_origin o)
{
	switch (o) {
	case KERNEL_CREATED:
		return "created";
	case KERNEL_ADOPTED:
		return "adopted";
	case KERNEL_MIGRATED:
		return "migrated";
	}
	return "unknown";
}

static cJSON *ifaces_json(const struct kernel_status *st)
{
	cJSON *arr = cJSON_CreateArray();

	for (size_t i = 0; arr && i < st->n_ifaces; i++) {
		const struct kernel_iface *f = &st->ifaces[i];
		cJSON *o = cJSON_CreateObject();
		const char *xdp = f->flags & KERNEL_IF_XDP_NATIVE ? "native"
				  : f->flags & KERNEL_IF_XDP_SKB  ? "generic"
								  : NULL;

		if (!o || !cJSON_AddItemToArray(arr, o) ||
		    !cJSON_AddStringToObject(o, "name", f->name) ||
		    !cJSON_AddNumberToObject(o, "ifindex", f->ifindex) ||
		    !cJSON_AddBoolToObject(o, "tc", (f->flags & KERNEL_IF_TC) != 0) ||
		    !(xdp ? cJSON_AddStringToObject(o, "xdp", xdp)
			  : cJSON_AddNullToObject(o, "xdp")) ||
		    !cJSON_AddBoolToObject(o, "clsact_created",
					   (f->flags & KERNEL_IF_CLSACT_OURS) != 0)) {
			cJSON_Delete(arr);
			return NULL;
		}
	}
	return arr;
}

static cJSON *verdicts_json(const struct kernel_status *st)
{
	cJSON *o = cJSON_CreateObject();

	for (unsigned v = 0; o && v < TG_V__COUNT; v++) {
		if (!cJSON_AddNumberToObject(o, kernel_verdict_name(v), (double)st->verdicts[v])) {
			cJSON_Delete(o);
			return NULL;
		}
	}
	return o;
}

static cJSON *penalty_json(struct kernel *k, const struct kernel_status *st, size_t limit)
{
	struct kernel_penalty_entry *e = calloc(limit ? limit : 1, sizeof(*e));
	cJSON *o = cJSON_CreateObject(), *arr = NULL;
	size_t n = 0;
	char when[32];

	if (!e || !o || kernel_penalty_list(k, e, limit, &n) ||
	    !cJSON_AddNumberToObject(o, "entries", (double)st->penalty_entries) ||
	    !cJSON_AddBoolToObject(o, "truncated", st->penalty_entries > n) ||
	    !(arr = cJSON_AddArrayToObject(o, "data")))
		goto fail;
	for (size_t i = 0; i < n; i++) {
		cJSON *p = cJSON_CreateObject();

		if (e[i].until_unix)
			tg_rfc3339_format(e[i].until_unix, when);
		if (!p || !cJSON_AddItemToArray(arr, p) ||
		    !cJSON_AddStringToObject(p, "address", e[i].addr) ||
		    !cJSON_AddNumberToObject(p, "refusals", (double)e[i].refusals_total) ||
		    !cJSON_AddNumberToObject(p, "dropped", (double)e[i].dropped_total) ||
		    !cJSON_AddNumberToObject(p, "strikes", e[i].strikes) ||
		    !(e[i].until_unix ? cJSON_AddStringToObject(p, "until", when)
				      : cJSON_AddNullToObject(p, "until")))
			goto fail;
	}
	free(e);
	return o;
fail:
	free(e);
	cJSON_Delete(o);
	return NULL;
}

cJSON *admin_kernel_json(struct kernel *k, size_t penalty_limit)
{
	struct kernel_status st = {0};
	cJSON *o = cJSON_CreateObject();

	if (!o || !cJSON_AddNumberToObject(o, "abi_version", TG_ABI_VERSION))
		goto fail;
	if (!k) {
		if (!cJSON_AddStringToObject(o, "mode", "off") ||
		    !cJSON_AddNullToObject(o, "pin_dir") ||
		    !cJSON_AddArrayToObject(o, "interfaces"))
			goto fail;
		return o;
	}
	if (kernel_status(k, &st) ||
	    !cJSON_AddStringToObject(o, "mode", kernel_mode_name(st.mode)) ||
	    !cJSON_AddStringToObject(o, "pin_dir", st.pin_dir) ||
	    !cJSON_AddStringToObject(o, "maps", origin_name(st.origin)) ||
	    !cJSON_AddNumberToObject(o, "slots", st.slots) ||
	    !cJSON_AddNumberToObject(o, "key_entries", st.keys_max) ||
	    !cJSON_AddItemToObject(o, "interfaces", ifaces_json(&st)) ||
	    !cJSON_AddItemToObject(o, "verdicts", verdicts_json(&st)) ||
	    !cJSON_AddItemToObject(o, "penalty_box", penalty_json(k, &st, penalty_limit)))
		goto fail;
	return o;
fail:
	cJSON_Delete(o);
	return NULL;
}
