/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The kernel loader (userspace/kernel*.c): what it accepts and refuses before touching the
 * kernel (kernel.allow prefixes, interfaces, mode off), the names status and metrics use,
 * and, when run as root with BPF, tg_keys' single updates and batched reconcile on real maps
 * under a pin directory of its own (removed at the end). Without root those cases skip.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernel.h"
#include "log.h"
#include "tg_test.h"

static const uint8_t secret[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

struct cidr_case {
	const char *text;
	int rc;
	uint32_t prefixlen;
	uint8_t addr[16];
};

static const struct cidr_case cidr_cases[] = {
    {"10.0.0.0/8", 0, 104, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 0}},
    {"127.0.0.0/8", 0, 104, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 0}},
    {"192.168.1.5", 0, 128, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 5}},
    {"0.0.0.0/0", 0, 96, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0}},
    {"::1/128", 0, 128, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}},
    {"fd00::/8", 0, 8, {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
    {"2001:db8::", 0, 128, {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
    {"", -EINVAL, 0, {0}},
    {"/8", -EINVAL, 0, {0}},
    {"10.0.0.0/", -EINVAL, 0, {0}},
    {"10.0.0.0/33", -EINVAL, 0, {0}},
    {"10.0.0.0/8x", -EINVAL, 0, {0}},
    {"10.0.0.0/-1", -EINVAL, 0, {0}},
    {"::/129", -EINVAL, 0, {0}},
    {"10.0.0/8", -EINVAL, 0, {0}},
    {"example.com/8", -EINVAL, 0, {0}},
    {"10.0.0.0/8/8", -EINVAL, 0, {0}},
};

static void t_cidr_table(void)
{
	for (size_t i = 0; i < TG_NCASES(cidr_cases); i++) {
		const struct cidr_case *c = &cidr_cases[i];
		struct tg_lpm_key k;
		int rc = kernel_cidr_parse(c->text, &k);

		TG_CHECK_INT(rc, c->rc);
		if (rc != c->rc)
			printf("#   '%s'\n", c->text);
		if (rc || c->rc)
			continue;
		TG_CHECK_INT(k.prefixlen, c->prefixlen);
		TG_CHECK(memcmp(k.addr, c->addr, 16) == 0);
	}
}

static void t_verdict_names(void)
{
	for (unsigned v = 0; v < TG_V__COUNT; v++) {
		const char *n = kernel_verdict_name(v);

		TG_CHECK(strcmp(n, "unknown") != 0);
		TG_CHECK(strspn(n, "abcdefghijklmnopqrstuvwxyz0123456789_") == strlen(n) && n[0]);
		for (unsigned w = 0; w < v; w++)
			TG_CHECK(strcmp(n, kernel_verdict_name(w)) != 0);
	}
	TG_CHECK_STR(kernel_verdict_name(TG_V_REFUSED), "refused");
	TG_CHECK_STR(kernel_verdict_name(TG_V_XDP_DROPPED), "xdp_dropped");
	TG_CHECK_STR(kernel_verdict_name(TG_V__COUNT), "unknown");
	TG_CHECK_STR(kernel_mode_name(TG_MODE_FULL), "full");
	TG_CHECK_STR(kernel_mode_name(TG_MODE_TC), "tc");
	TG_CHECK_STR(kernel_mode_name(TG_MODE_OFF), "off");
}

static struct kernel_opts opts(enum kernel_mode_req mode, const char *ifs, const char *allow,
			       const char *pin)
{
	return (struct kernel_opts){.mode = mode,
				    .interfaces = ifs,
				    .allow = allow,
				    .pin_dir = pin,
				    .rate_slots = 64,
				    .secret = secret,
				    .data_listen = "127.0.0.1:8080"};
}

static void t_bad_options_change_nothing(void)
{
	const char *pin = "/sys/fs/bpf/tollgate-unit-never";
	struct kernel_opts o = opts(KERNEL_MODE_FULL, "nosuch0", "", pin);
	struct kernel *k = (struct kernel *)&o; /* must be reset to NULL */
	struct stat st;

	TG_CHECK_INT(kernel_open(&o, &k), -ENODEV);
	TG_CHECK(k == NULL);
	o = opts(KERNEL_MODE_AUTO, "lo", "10.0.0.0/33", pin); /* auto too: config mistakes */
	TG_CHECK_INT(kernel_open(&o, &k), -EINVAL);
	TG_CHECK(k == NULL);
	o = opts(KERNEL_MODE_TC, "", "", pin);
	o.data_listen = "192.0.2.123:8080"; /* an address no interface holds */
	TG_CHECK_INT(kernel_open(&o, &k), -ENODEV);
	TG_CHECK(stat(pin, &st) != 0);
}

static void t_mode_off_is_no_kernel(void)
{
	struct kernel_opts o = opts(KERNEL_MODE_OFF, "nosuch0", "bad", "/nonexistent");
	struct kernel *k = (struct kernel *)&o;

	TG_CHECK_INT(kernel_open(&o, &k), 0);
	TG_CHECK(k == NULL);
}

/* Opens real maps (mode tc, nothing attached); NULL when not root (the caller skips). As
 * root, a load that fails is a failure: the daemon could not run its kernel path either. */
static struct kernel *real_maps(char pin[64])
{
	struct kernel_opts o;
	struct kernel *k = NULL;
	int rc;

	snprintf(pin, 64, "/sys/fs/bpf/tollgate-unit-%d", (int)getpid());
	o = opts(KERNEL_MODE_TC, "lo", "127.0.0.0/8", pin);
	if (geteuid() != 0)
		return NULL;
	rc = kernel_open(&o, &k);
	TG_CHECK_INT(rc, 0);
	TG_CHECK(k != NULL);
	if (rc)
		printf("#   the kernel objects do not load: %s (log.level debug shows why)\n",
		       strerror(-rc));
	return k;
}

#define REAL_MAPS_OR_SKIP(k, pin)                                                                  \
	do {                                                                                       \
		if (geteuid() != 0)                                                                \
			TG_SKIP("needs root and BPF (real maps)");                                 \
		(k) = real_maps(pin);                                                              \
		TG_REQUIRE(k);                                                                     \
	} while (0)

static void t_key_put_get_del(void)
{
	char pin[64];
	struct kernel *k;
	uint32_t slot = 0, gen = 0;

	REAL_MAPS_OR_SKIP(k, pin);
	TG_CHECK_INT(kernel_key_put(k, 0xabc, 7, 3), 0);
	TG_CHECK_INT(kernel_key_get(k, 0xabc, &slot, &gen), 0);
	TG_CHECK_INT(slot, 7);
	TG_CHECK_INT(gen, 3);
	TG_CHECK_INT(kernel_key_put(k, 0xabc, 64, 1), -ERANGE); /* beyond the 64 slots */
	TG_CHECK_INT(kernel_key_del(k, 0xabc), 0);
	TG_CHECK_INT(kernel_key_get(k, 0xabc, &slot, &gen), -ENOENT);
	TG_CHECK_INT(kernel_key_del(k, 0xabc), 0); /* absent: fine */
	kernel_close(k);
	TG_CHECK_INT(kernel_detach(pin, NULL), 0);
}

static void t_reconcile_exact(void)
{
	uint64_t h[3] = {11, 22, 33}, h2[2] = {22, 44};
	uint32_t s[3] = {1, 2, 3}, g[3] = {1, 1, 1}, s2[2] = {5, 6}, g2[2] = {2, 2};
	uint64_t many[129];
	uint32_t ms[129] = {0}, mg[129] = {0};
	uint32_t slot = 0, gen = 0;
	char pin[64];
	struct kernel *k;

	REAL_MAPS_OR_SKIP(k, pin);
	TG_CHECK_INT(kernel_key_put(k, 99, 9, 9), 0); /* stale before the reconcile */
	TG_CHECK_INT(kernel_keys_reconcile(k, h, s, g, 3), 0);
	TG_CHECK_INT(kernel_key_get(k, 99, &slot, &gen), -ENOENT);
	TG_CHECK_INT(kernel_key_get(k, 33, &slot, &gen), 0);
	TG_CHECK_INT(slot, 3);
	/* again with one kept (new value), one new, two gone */
	TG_CHECK_INT(kernel_keys_reconcile(k, h2, s2, g2, 2), 0);
	TG_CHECK_INT(kernel_key_get(k, 11, &slot, &gen), -ENOENT);
	TG_CHECK_INT(kernel_key_get(k, 33, &slot, &gen), -ENOENT);
	TG_CHECK_INT(kernel_key_get(k, 22, &slot, &gen), 0);
	TG_CHECK_INT(slot, 5);
	TG_CHECK_INT(gen, 2);
	TG_CHECK_INT(kernel_key_get(k, 44, &slot, &gen), 0);
	TG_CHECK_INT(slot, 6);
	/* bad input changes nothing */
	s2[1] = 64;
	TG_CHECK_INT(kernel_keys_reconcile(k, h, s2, g2, 2), -ERANGE);
	TG_CHECK_INT(kernel_key_get(k, 44, &slot, &gen), 0);
	for (size_t i = 0; i < 129; i++)
		many[i] = 1000 + i;
	TG_CHECK_INT(kernel_keys_reconcile(k, many, ms, mg, 129), -ENOSPC); /* 128 entries */
	TG_CHECK_INT(kernel_key_get(k, 22, &slot, &gen), 0);
	/* empty: everything goes */
	TG_CHECK_INT(kernel_keys_reconcile(k, NULL, NULL, NULL, 0), 0);
	TG_CHECK_INT(kernel_key_get(k, 22, &slot, &gen), -ENOENT);
	kernel_close(k);
	TG_CHECK_INT(kernel_detach(pin, NULL), 0);
}

static void t_slots_are_shared_memory(void)
{
	char pin[64];
	struct kernel *k;
	struct tg_slot *mem;
	struct kernel_status st;
	uint32_t cap = 0;

	REAL_MAPS_OR_SKIP(k, pin);
	mem = kernel_slots_mem(k, &cap);
	TG_REQUIRE(mem);
	TG_CHECK_INT(cap, 64);
	mem[63].win[0].tat_ns = 12345; /* the last slot is writable: the whole map is mapped */
	{ /* a second daemon on the same pin directory is refused while this one runs */
		struct kernel_opts o2 = opts(KERNEL_MODE_TC, "lo", "", pin);
		struct kernel *k2 = NULL;

		TG_CHECK_INT(kernel_open(&o2, &k2), -EBUSY);
		TG_CHECK(k2 == NULL);
		TG_CHECK_INT(kernel_detach(pin, NULL), -EBUSY);
	}
	TG_CHECK_INT(kernel_status(k, &st), 0);
	TG_CHECK_INT(st.slots, 64);
	TG_CHECK_INT(st.keys_max, 128);
	TG_CHECK(st.mode == TG_MODE_TC);
	kernel_close(k);
	/* reopened: adopted, and the slot kept its state */
	k = real_maps(pin);
	TG_REQUIRE(k);
	mem = kernel_slots_mem(k, &cap);
	TG_CHECK(mem[63].win[0].tat_ns == 12345);
	TG_CHECK_INT(kernel_status(k, &st), 0);
	TG_CHECK(st.origin == KERNEL_ADOPTED);
	kernel_close(k);
	TG_CHECK_INT(kernel_detach(pin, NULL), 0);
}

static const struct tg_case cases[] = {
    {"kernel.allow prefixes: IPv4 mapped, IPv6, hosts; malformed ones refused", t_cidr_table},
    {"verdict and mode names: complete, distinct, snake_case", t_verdict_names},
    {"an unknown interface or a bad prefix is an error before anything is loaded",
     t_bad_options_change_nothing},
    {"mode off: no kernel, options not even looked at", t_mode_off_is_no_kernel},
    {"tg_keys: put, get, delete; a slot beyond the map refused", t_key_put_get_del},
    {"reconcile leaves exactly the given entries; bad input changes nothing", t_reconcile_exact},
    {"tg_slots is mapped whole; a second opener and detach are refused meanwhile; a reopen "
     "adopts it with its state",
     t_slots_are_shared_memory},
};

int main(void)
{
	log_init("test_kernel", LOG_LVL_ERROR);
	return tg_run("kernel", cases, TG_NCASES(cases));
}
