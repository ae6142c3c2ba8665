/*
 * The CUSE floor for scripts/bench: a minimal libfuse CUSE device whose ioctls take exactly the
 * rounds mcemu's take (unrestricted ioctls: a first call that only asks for the argument, a
 * second that answers), with no work behind them. What any CUSE device pays per ioctl.
 *
 *   cuse-floor [-s] NAME   creates /dev/NAME (root, /dev/cuse), runs in the foreground;
 *                          -s: one thread (libfuse's single-threaded loop), else its default
 *                          multithreaded loop
 */
#define FUSE_USE_VERSION 31
#include <cuse_lowlevel.h>
#include <fuse_opt.h>
#include <linux/ioctl.h>
#include <linux/media.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

static void floor_open(fuse_req_t req, struct fuse_file_info *fi)
{
	fuse_reply_open(req, fi);
}

/*
 * MEDIA_IOC_G_TOPOLOGY with arrays takes mcemu three rounds: the struct, then the arrays it
 * points to. The floor asks for the same iovecs and fills them with zeros.
 */
static int topology_round(fuse_req_t req, void *arg, const void *in_buf, size_t in_bufsz,
			  size_t out_bufsz)
{
	struct media_v2_topology t;
	struct iovec in = { arg, sizeof(t) }, out[5];
	size_t sizes[4], want = sizeof(t);
	__u64 ptrs[4];
	char *reply;
	int n = 1, i;

	if (in_bufsz < sizeof(t))
		return 0; /* the generic two rounds first */
	memcpy(&t, in_buf, sizeof(t));
	ptrs[0] = t.ptr_entities; sizes[0] = (size_t)t.num_entities * sizeof(struct media_v2_entity);
	ptrs[1] = t.ptr_interfaces; sizes[1] = (size_t)t.num_interfaces * sizeof(struct media_v2_interface);
	ptrs[2] = t.ptr_pads; sizes[2] = (size_t)t.num_pads * sizeof(struct media_v2_pad);
	ptrs[3] = t.ptr_links; sizes[3] = (size_t)t.num_links * sizeof(struct media_v2_link);
	out[0] = (struct iovec){ arg, sizeof(t) };
	for (i = 0; i < 4; i++) {
		if (!ptrs[i] || !sizes[i])
			continue;
		out[n++] = (struct iovec){ (void *)(uintptr_t)ptrs[i], sizes[i] };
		want += sizes[i];
	}
	if (n == 1)
		return 0;
	if (want > (1 << 20)) {
		fuse_reply_err(req, 28);
		return 1;
	}
	if (out_bufsz < want) {
		fuse_reply_ioctl_retry(req, &in, 1, out, n);
		return 1;
	}
	/* Per call: the multithreaded loop answers several at once. */
	reply = calloc(1, want);
	if (!reply) {
		fuse_reply_err(req, 12);
		return 1;
	}
	memcpy(reply, &t, sizeof(t));
	fuse_reply_ioctl(req, 0, reply, want);
	free(reply);
	return 1;
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
	if (ucmd == MEDIA_IOC_G_TOPOLOGY && topology_round(req, arg, in_buf, in_bufsz, out_bufsz))
		return;
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
	char *fargv[] = { argv[0], "-f", "-s" };
	int single = argc == 3 && strcmp(argv[1], "-s") == 0;

	if (argc != 2 && !single) {
		fprintf(stderr, "usage: cuse-floor [-s] NAME\n");
		return 2;
	}
	snprintf(devname, sizeof(devname), "DEVNAME=%s", argv[argc - 1]);
	memset(&ci, 0, sizeof(ci));
	ci.dev_info_argc = 1;
	ci.dev_info_argv = dev_info_argv;
	ci.flags = CUSE_UNRESTRICTED_IOCTL;
	return cuse_lowlevel_main(single ? 3 : 2, fargv, &ci, &ops, NULL);
}
