// SPDX-License-Identifier: BSD-3-Clause

//go:build cgo

package main

// The early fork: a Go program cannot fork once its runtime runs, so a
// daemon made by re-executing itself pays the Go start-up twice, one
// after the other (half of the mount time). This constructor runs before
// the Go runtime starts, in a single-threaded process, and forks there:
// the child becomes the server and the parent the command that waits for
// its report, and both start their Go runtimes at the same time. runc's
// nsexec forks before the Go runtime in the same way.
//
// The constructor forks only when the command line may ask for a daemon
// (no -f, no --help) and the program is not a test binary; both processes
// then parse the same arguments with the same Go code and so agree: when
// the Go side finds no daemon is wanted (a usage error, say), the child
// exits without a word. The child starts a new session, and keeps only
// the report pipe, the standard descriptors and the descriptors the
// arguments name (/dev/fd/N, /proc/self/fd/N): everything else the caller
// let it inherit is closed before the Go runtime starts.
//
// The parent then waits here for the first byte of the child's report.
// A zero byte (mounted) ends it at once, its Go runtime never started:
// the Go start-up is the larger part of a warm mount, and on a node with
// few cores the two runtimes would start on the same CPUs. Anything else
// (an error message, a child that ends without a word because the Go
// side found no daemon wanted) is left to the Go code, given the byte
// read. So is a command line with --ready-fd, which the Go side checks
// before the mount (it is not parsed here, to leave one parser).

/*
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

int shifter_mount_early_role;      // 0: no early fork, 1: parent, 2: child
int shifter_mount_early_fd = -1;   // the report pipe: read end in the parent, write end in the child
int shifter_mount_early_pid;       // the child's pid, in the parent
int shifter_mount_early_first = -1; // the report's first byte, read by the parent's constructor (-1: none)

static int early_fd_arg(const char *a) {
	const char *p = NULL;
	if (strncmp(a, "/dev/fd/", 8) == 0) p = a + 8;
	else if (strncmp(a, "/proc/self/fd/", 14) == 0) p = a + 14;
	if (p == NULL || *p == 0) return -1;
	int n = 0;
	for (; *p; p++) {
		if (*p < '0' || *p > '9' || n > 1000000) return -1;
		n = n * 10 + (*p - '0');
	}
	return n;
}

// early_test_binary: go test's binary (name.test), which must run its
// tests, not the command.
static int early_test_binary(const char *arg0) {
	size_t n = strlen(arg0);
	return n >= 5 && strcmp(arg0 + n - 5, ".test") == 0;
}

static int early_wants_fork(int argc, char **argv) {
	if (argc < 3 || argv == NULL || argv[0] == NULL) return 0;
	if (early_test_binary(argv[0])) return 0;
	// _SHIFTER_MOUNT_READY_PIPE: fusefs.DaemonEnv, set in a daemon made by re-executing.
	if (getenv("_SHIFTER_MOUNT_READY_PIPE") != NULL || getenv("SHIFTER_MOUNT_NO_EARLY_FORK") != NULL) return 0;
	for (int i = 1; i < argc && argv[i] != NULL; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) break;
		if (strcmp(a, "--foreground") == 0 || strcmp(a, "--help") == 0) return 0;
		// Short flags, possibly combined (-fd): any f or h means no daemon.
		if (a[0] == '-' && a[1] != '-' && a[1] != 0 && a[1] != 'o' && (strchr(a, 'f') || strchr(a, 'h'))) return 0;
	}
	return 1;
}

// early_mentions_ready_fd: any argument starting with --ready-fd, even
// one that is another flag's value (the Go side decides).
static int early_mentions_ready_fd(int argc, char **argv) {
	for (int i = 1; i < argc && argv[i] != NULL; i++)
		if (strncmp(argv[i], "--ready-fd", 10) == 0) return 1;
	return 0;
}

static void early_close_inherited(int argc, char **argv, int keep) {
	int keeps[64];
	int nk = 0;
	keeps[nk++] = keep;
	for (int i = 1; i < argc && argv[i] != NULL && nk < 64; i++) {
		int fd = early_fd_arg(argv[i]);
		if (fd > 2) keeps[nk++] = fd;
	}
	// Sort the few kept descriptors, then close the gaps between them.
	for (int i = 1; i < nk; i++)
		for (int j = i; j > 0 && keeps[j-1] > keeps[j]; j--) {
			int t = keeps[j]; keeps[j] = keeps[j-1]; keeps[j-1] = t;
		}
	unsigned int lo = 3;
	for (int i = 0; i < nk; i++) {
		if ((unsigned int)keeps[i] > lo)
			syscall(SYS_close_range, lo, (unsigned int)keeps[i] - 1, 0);
		if ((unsigned int)keeps[i] + 1 > lo) lo = (unsigned int)keeps[i] + 1;
	}
	syscall(SYS_close_range, lo, ~0U, 0);
}

// The signals serve catches, recorded while the Go side sets up its own
// handling (see holdSignals).
static unsigned int shifter_mount_held;

static void shifter_mount_hold_handler(int sig) {
	__atomic_fetch_or(&shifter_mount_held, 1u << sig, __ATOMIC_SEQ_CST);
}

static int shifter_mount_hold(void) {
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = shifter_mount_hold_handler;
	sa.sa_flags = SA_ONSTACK | SA_RESTART; // Go threads run handlers on their signal stacks
	sigfillset(&sa.sa_mask);
	int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1};
	for (int i = 0; i < 4; i++)
		if (sigaction(sigs[i], &sa, NULL) != 0) return -1;
	return 0;
}

static unsigned int shifter_mount_take_held(void) {
	return __atomic_exchange_n(&shifter_mount_held, 0, __ATOMIC_SEQ_CST);
}

#ifdef SHIFTER_MOUNT_PLAIN
// early_exec_cache: a command line naming --cache-dir is served by
// shifter-mount-cache (cache_exec_linux.go); the plain build execs it here,
// before its own Go runtime starts, which would only parse the arguments
// and exec it (about 2 ms of a cache mount). Any argument spelling
// --cache-dir counts, even another flag's value: the cache build does
// everything this one does. Nothing happens unless the cache build is
// beside this binary and as trusted as the Go side requires (a regular
// file, owned by root or this user, writable by its owner only); when
// that or the exec fails, the Go side does it again and reports why.
static void early_exec_cache(int argc, char **argv) {
	if (argc < 2 || argv == NULL || argv[0] == NULL || early_test_binary(argv[0])) return;
	int want = 0;
	for (int i = 1; i < argc && argv[i] != NULL; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) break;
		if (strcmp(a, "--cache-dir") == 0 || (strncmp(a, "--cache-dir=", 12) == 0 && a[12] != 0)) {
			want = 1;
			break;
		}
	}
	if (!want) return;
	static char bin[4096];
	ssize_t n = readlink("/proc/self/exe", bin, sizeof bin - 32);
	if (n <= 0) return;
	bin[n] = 0;
	char *slash = strrchr(bin, '/');
	if (slash == NULL) return;
	strcpy(slash + 1, "shifter-mount-cache");
	struct stat st;
	if (lstat(bin, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & 022) != 0) return;
	if (st.st_uid != 0 && st.st_uid != geteuid()) return;
	extern char **environ;
	char *arg0 = argv[0];
	argv[0] = bin;
	execve(bin, argv, environ);
	argv[0] = arg0; // the Go side sees the command line it was given
}
#endif

__attribute__((constructor)) static void shifter_mount_early(int argc, char **argv, char **envp) {
	(void)envp;
#ifdef SHIFTER_MOUNT_PLAIN
	early_exec_cache(argc, argv);
#endif
	if (!early_wants_fork(argc, argv)) return;
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0) return;
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return;
	}
	if (pid == 0) {
		close(p[0]);
		setsid();
		early_close_inherited(argc, argv, p[1]);

		shifter_mount_early_role = 2;
		shifter_mount_early_fd = p[1];
		return;
	}
	close(p[1]);
	shifter_mount_early_role = 1;
	shifter_mount_early_fd = p[0];
	shifter_mount_early_pid = pid;
	if (early_mentions_ready_fd(argc, argv)) return;
	unsigned char b;
	ssize_t n;
	do n = read(p[0], &b, 1); while (n < 0 && errno == EINTR);
	if (n == 1 && b == 0) _exit(0); // mounted: the child serves on
	if (n == 1) shifter_mount_early_first = b;
}
*/
import "C"

import (
	"os"
	"os/signal"
	"syscall"
)

// holdSignals has the signals serve catches (sigs) recorded by a C
// handler until takeHeld, so that none ends the server while the first
// signal.Notify, which takes 0.3-0.7 ms here, runs off the path of the
// mount. signal.Ignore first marks them as not handled by Go, so that
// Notify installs the Go handler again over this one (a signal in
// between, a few microseconds, is ignored). It reports whether the
// handler is in place; callers fall back to waiting for Notify.
func holdSignals(sigs []os.Signal) bool {
	signal.Ignore(sigs...)
	if C.shifter_mount_hold() != 0 {
		signal.Reset(sigs...)
		return false
	}
	return true
}

// takeHeld returns the signals the C handler recorded, and forgets them.
func takeHeld(sigs []os.Signal) []os.Signal {
	got := uint(C.shifter_mount_take_held())
	var out []os.Signal
	for _, s := range sigs {
		if got&(1<<uint(s.(syscall.Signal))) != 0 {
			out = append(out, s)
		}
	}
	return out
}

// earlyFork reports what the constructor did: the role of this process
// (earlyNone, earlyParent or earlyChild), its end of the report pipe, in
// the parent the child's pid and the part of the report the constructor
// read already.
func earlyFork() (role, fd, pid int, read []byte) {
	if b := int(C.shifter_mount_early_first); b >= 0 {
		read = []byte{byte(b)}
	}
	return int(C.shifter_mount_early_role), int(C.shifter_mount_early_fd), int(C.shifter_mount_early_pid), read
}
