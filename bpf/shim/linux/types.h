/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Empty stand-in for <linux/types.h> in BPF builds only (the Makefile puts bpf/shim first on
 * the include path of *.bpf.c). include/tollgate/abi.h and gcra.h include <linux/types.h>
 * for userspace; in BPF the __u8..__u64 types already come from vmlinux.h, and the real UAPI
 * header would drag in definitions that clash with it. So vmlinux.h must come first: include
 * "lib/common.h" at the top of every BPF file.
 */
#ifndef TG_BPF_SHIM_LINUX_TYPES_H
#define TG_BPF_SHIM_LINUX_TYPES_H

#ifndef __VMLINUX_H__
#error "BPF code must include vmlinux.h (via lib/common.h) before tollgate headers"
#endif

#endif /* TG_BPF_SHIM_LINUX_TYPES_H */
