/*
 * The CUSE floor for scripts/bench: a minimal libfuse CUSE device whose ioctls take exactly the
 * rounds mcemu's take (unrestricted ioctls: a first call that only asks for the argument, a
 * second that answers), with no work behind them. What any CUSE device pays per ioctl.
 *
 *   cuse-floor NAME        creates /dev/NAME (root, /dev/cuse), runs in the foreground
 */
#define FUSE_USE_VERSION 31
#include <cuse_lowlevel.h>
#include <fuse_opt.h>
#include <linux/ioctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

static void floor_open(fuse_req_t req, struct fuse_file_info *fi)
{
	fuse_reply_open(req, fi);
}

/*
 * Any command: read the argument if the command writes, write it back if it reads, in the same
 * two rounds mcemu uses for a fixed-size argument.
 */
static void floor_ioctl(fuse_req_t req, int cmd, void *arg, struct fuse_file_info *fi,
			unsigned flags, const void *in_buf, size_t in_bufsz, size_t out_bufsz)
{
	unsigned int ucmd = (unsigned int)cmd;
	size_t size = _IOC_SIZE(ucmd);
	int dir = _IOC_DIR(ucmd);
	struct iovec in = { arg, size }, out = { arg, size };
	char buf[16384];

	(void)fi;
	(void)flags;
	if (size > sizeof(buf)) {
		fuse_reply_err(req, 22);
		return;
	}
	if (((dir & _IOC_WRITE) && in_bufsz < size) || ((dir & _IOC_READ) && out_bufsz < size)) {
		fuse_reply_ioctl_retry(req, (dir & _IOC_WRITE) ? &in : NULL, (dir & _IOC_WRITE) ? 1 : 0,
				       (dir & _IOC_READ) ? &out : NULL, (dir & _IOC_READ) ? 1 : 0);
		return;
	}
	memset(buf, 0, size);
	if (dir & _IOC_WRITE)
		memcpy(buf, in_buf, size);
	fuse_reply_ioctl(req, 0, (dir & _IOC_READ) ? buf : NULL, (dir & _IOC_READ) ? size : 0);
}

static const struct cuse_lowlevel_ops ops = {
	.open = floor_open,
	.ioctl = floor_ioctl,
};

int main(int argc, char **argv)
{
	char devname[128];
	const char *dev_info_argv[] = { devname };
	struct cuse_info ci;
	char *fargv[] = { argv[0], "-f" };

	if (argc != 2) {
		fprintf(stderr, "usage: cuse-floor NAME\n");
		return 2;
	}
	snprintf(devname, sizeof(devname), "DEVNAME=%s", argv[1]);
	memset(&ci, 0, sizeof(ci));
	ci.dev_info_argc = 1;
	ci.dev_info_argv = dev_info_argv;
	ci.flags = CUSE_UNRESTRICTED_IOCTL;
	return cuse_lowlevel_main(2, fargv, &ci, &ops, NULL);
}
