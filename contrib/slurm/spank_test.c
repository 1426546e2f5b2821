/* SPDX-License-Identifier: BSD-3-Clause
 *
 * Unit test of shifter_spank.c without Slurm: the plugin is compiled in
 * with stand-ins for the few SPANK functions it calls. Run by
 * tests/slurm (TestPluginUnit), which builds it with cc:
 *
 *   spank_test DIR   (DIR: a scratch directory for fake shifterimg/shifterd)
 *
 * Prints "ok NAME" or "FAIL NAME: why" per case; exits 1 on a failure.
 */
#include <stdarg.h>

#include "shifter_spank.c"

static spank_context_t test_ctx = S_CTX_ALLOCATOR;
static char last_error[8192];
static int registered;
static char control_env[4096];

spank_context_t spank_context(void) { return test_ctx; }
spank_err_t spank_option_register(spank_t sp, struct spank_option *opt)
{
	(void)sp;
	(void)opt;
	registered++;
	return ESPANK_SUCCESS;
}
spank_err_t spank_job_control_setenv(spank_t sp, const char *name, const char *value, int overwrite)
{
	(void)sp;
	(void)overwrite;
	size_t n = strlen(control_env);
	snprintf(control_env + n, sizeof control_env - n, "%s=%s\n", name, value);
	return ESPANK_SUCCESS;
}
const char *spank_strerror(spank_err_t err)
{
	(void)err;
	return "stub error";
}
void slurm_info(const char *format, ...)
{
	(void)format;
}
void slurm_debug(const char *format, ...)
{
	(void)format;
}
void slurm_error(const char *format, ...)
{
	va_list ap;
	va_start(ap, format);
	vsnprintf(last_error, sizeof last_error, format, ap);
	va_end(ap);
}

static int failures;
static char dir[512];

static void check(const char *name, int ok, const char *why)
{
	if (ok) {
		printf("ok %s\n", name);
	} else {
		printf("FAIL %s: %s (last error: %s)\n", name, why, last_error);
		failures++;
	}
}

static void reset(void)
{
	have_image = have_volume = have_module = 0;
	image_req[0] = volume[0] = module[0] = cfg_path[0] = '\0';
	last_error[0] = control_env[0] = '\0';
	lookup_timeout = 30;
	unsetenv("SHIFTER_IMAGE");
	unsetenv("SHIFTER_IMAGETYPE");
	unsetenv("SHIFTER_IMAGEREQUEST");
	unsetenv("SLURM_JOB_ID");
}

/* fake writes an executable shell script DIR/NAME with body. */
static void fake(const char *name, const char *body)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (f == NULL) {
		perror(path);
		exit(2);
	}
	fprintf(f, "#!/bin/sh\n%s\n", body);
	fclose(f);
	chmod(path, 0755);
	snprintf(shifterimg_path, sizeof shifterimg_path, "%s", path);
}

#define ID "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: spank_test DIR\n");
		return 2;
	}
	snprintf(dir, sizeof dir, "%s", argv[1]);

	/* plugstack.conf arguments */
	{
		char *good[] = {"shifter_config=/etc/shifter/udiRoot.conf", "shifterimg=/opt/x/shifterimg",
				"lookup_timeout=5", "warm=full"};
		reset();
		check("args: valid", parse_args(4, good) == 0 && strcmp(cfg_path, "/etc/shifter/udiRoot.conf") == 0 &&
					    lookup_timeout == 5 && warm_mode == WARM_FULL,
		      "not taken");
		const char *bad[] = {"bogus=1", "shifterimg=relative/path", "shifterimg=/a b", "lookup_timeout=0",
				     "lookup_timeout=5s", "warm=sometimes", "shifter_config=/x;rm"};
		for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
			char *a[] = {(char *)bad[i]};
			char name[128];
			snprintf(name, sizeof name, "args: refuse %s", bad[i]);
			check(name, parse_args(1, a) < 0 && last_error[0], "accepted");
		}
		char *shifters[] = {"enable_sshd=0", "enable_ccm=1", "long_options", "memory_cgroup=/sys/fs/cgroup/memory"};
		check("args: Shifter's arguments ignored", parse_args(4, shifters) == 0, "refused");
		warm_mode = WARM_TRACE;
	}

	/* option values */
	{
		struct {
			int (*f)(int, const char *, int);
			const char *v;
			int ok;
		} cases[] = {
		    {opt_image, "docker:ubuntu:22.04", 1},
		    {opt_image, "registry.example.org:5000/a/b@sha256:" ID, 1},
		    {opt_image, "ubuntu;id", 0},
		    {opt_image, "ubuntu latest", 0},
		    {opt_image, "$(id)", 0},
		    {opt_image, "", 0},
		    {opt_volume, "/scratch/a:/data:ro;/b:/c", 1},
		    {opt_volume, "/a:/b\n", 0},
		    {opt_volume, "/a:`id`", 0},
		    {opt_module, "mpich,gpu", 1},
		    {opt_module, "a b", 0},
		};
		for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
			char name[512];
			reset();
			snprintf(name, sizeof name, "option %zu (%.60s) %s", i, cases[i].v,
				 cases[i].ok ? "accepted" : "refused");
			for (char *p = name; *p; p++)
				if (*p == '\n')
					*p = '?';
			int rc = cases[i].f(0, cases[i].v, 0);
			check(name, (rc == 0) == cases[i].ok, "wrong verdict");
		}
		char long_image[MAX_IMAGE + 2];
		memset(long_image, 'a', sizeof long_image - 1);
		long_image[sizeof long_image - 1] = '\0';
		reset();
		check("option: image too long", opt_image(0, long_image, 0) < 0 && strstr(last_error, "longer"),
		      "accepted");
	}

	/* pinning through shifterimg lookup */
	{
		reset();
		fake("lookup-ok", "[ \"$1\" = lookup ] && [ \"$2\" = -- ] && [ \"$3\" = docker:ubuntu ] || exit 3\n"
				  "[ -z \"$SECRET\" ] || exit 4\necho " ID);
		setenv("SECRET", "from the user's environment", 1);
		opt_image(0, "docker:ubuntu", 0);
		opt_volume(0, "/a:/b", 0);
		int rc = slurm_spank_init_post_opt(NULL, 0, NULL);
		const char *t = getenv("SHIFTER_IMAGETYPE"), *i = getenv("SHIFTER_IMAGE");
		check("pin: id exported", rc == 0 && t && strcmp(t, "id") == 0 && i && strcmp(i, ID) == 0 &&
					      strstr(control_env, "SHIFTER_IMAGE=" ID "\n") &&
					      strstr(control_env, "SHIFTER_IMAGEREQUEST=docker:ubuntu\n") &&
					      strstr(control_env, "SHIFTER_VOLUME=/a:/b\n"),
		      control_env);
		unsetenv("SECRET");

		reset();
		fake("lookup-unknown", "echo 'shifterimg: docker:nothere: image not found' >&2; exit 1");
		opt_image(0, "nothere", 0);
		rc = slurm_spank_init_post_opt(NULL, 0, NULL);
		check("pin: unknown image fails with the message",
		      rc < 0 && strstr(last_error, "shifter: image nothere cannot be used: shifterimg: docker:nothere: image not found") &&
			  getenv("SHIFTER_IMAGE") == NULL,
		      "no failure or wrong message");

		reset();
		fake("lookup-garbage", "echo not-an-id");
		opt_image(0, "ubuntu", 0);
		rc = slurm_spank_init_post_opt(NULL, 0, NULL);
		check("pin: output without an id fails", rc < 0 && strstr(last_error, "printed no image id"), "accepted");

		reset();
		fake("lookup-hang", "sleep 30 & sleep 30");
		lookup_timeout = 1;
		opt_image(0, "ubuntu", 0);
		double t0 = now();
		rc = slurm_spank_init_post_opt(NULL, 0, NULL);
		check("pin: a hanging lookup times out", rc < 0 && strstr(last_error, "timed out after 1 s") && now() - t0 < 5,
		      "no timeout");

		reset();
		snprintf(shifterimg_path, sizeof shifterimg_path, "%s/does-not-exist", dir);
		opt_image(0, "ubuntu", 0);
		rc = slurm_spank_init_post_opt(NULL, 0, NULL);
		check("pin: missing shifterimg fails", rc < 0 && strstr(last_error, "cannot run"), "no failure");

		reset();
		fake("lookup-never", "exit 9");
		opt_image(0, "id:deadbeef", 0);
		rc = slurm_spank_init_post_opt(NULL, 0, NULL);
		check("pin: short id refused", rc < 0 && strstr(last_error, "64 lowercase hex"), "accepted");
		reset();
		opt_image(0, "local:/", 0);
		check("pin: local: refused", opt_image(0, "local:/", 0) < 0 || slurm_spank_init_post_opt(NULL, 0, NULL) < 0,
		      "accepted");

		/* Inside the job, srun sees sbatch's --image again: the pinned
		 * id is kept without asking shifterimg (which would now fail). */
		reset();
		setenv("SLURM_JOB_ID", "42", 1);
		setenv("SHIFTER_IMAGETYPE", "id", 1);
		setenv("SHIFTER_IMAGE", ID, 1);
		setenv("SHIFTER_IMAGEREQUEST", "docker:ubuntu", 1);
		opt_image(0, "docker:ubuntu", 0);
		test_ctx = S_CTX_LOCAL;
		rc = slurm_spank_init_post_opt(NULL, 0, NULL);
		check("pin: kept inside the job", rc == 0 && strcmp(getenv("SHIFTER_IMAGE"), ID) == 0, "re-resolved");
		/* A different request inside the job is resolved. */
		unsetenv("SHIFTER_IMAGE");
		setenv("SHIFTER_IMAGE", ID, 1);
		opt_image(0, "docker:other", 0);
		rc = slurm_spank_init_post_opt(NULL, 0, NULL);
		check("pin: another image inside the job is looked up", rc < 0 && strstr(last_error, "exit") == NULL &&
									   strstr(last_error, "cannot be used"),
		      "not looked up");
		test_ctx = S_CTX_ALLOCATOR;
	}

	/* The remote context does not pin (slurmstepd). */
	{
		reset();
		fake("lookup-fail", "exit 1");
		opt_image(0, "ubuntu", 0);
		test_ctx = S_CTX_REMOTE;
		check("remote context does nothing", slurm_spank_init_post_opt(NULL, 0, NULL) == 0, "failed");
		test_ctx = S_CTX_ALLOCATOR;
	}

	return failures ? 1 : 0;
}
