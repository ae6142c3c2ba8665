//! The CUSE device behind `/dev/mediaN`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cuse::{Context, Device, Errno, IoctlRequest, IoctlRound, ReplyIoctl};
use media_graph::MediaIoctls;
use parking_lot::Mutex;

pub struct MediaNode {
    dev: Arc<dyn MediaIoctls>,
    next_fh: AtomicU64,
    open: Mutex<HashSet<u64>>,
}

impl MediaNode {
    pub fn new(dev: Arc<dyn MediaIoctls>) -> Arc<Self> {
        Arc::new(Self {
            dev,
            next_fh: AtomicU64::new(1),
            open: Mutex::new(HashSet::new()),
        })
    }
}

impl Device for MediaNode {
    fn open(&self, _ctx: &Context<'_>, _flags: u32) -> Result<u64, Errno> {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.open.lock().insert(fh);
        Ok(fh)
    }

    fn release(&self, fh: u64) {
        self.open.lock().remove(&fh);
    }

    fn ioctl(&self, ctx: &Context<'_>, req: IoctlRequest<'_>, reply: ReplyIoctl) {
        if !self.open.lock().contains(&req.fh) {
            return reply.error(Errno::EBADF);
        }
        let mut round = IoctlRound::new(req, ctx.memory());
        crate::dispatch::media(&*self.dev, &mut round, reply);
    }

    // read/write: EINVAL (the media devnode has no read/write); poll: DEFAULT_POLLMASK, as
    // media_poll() answers for a registered node without a poll op. Both are the trait defaults.
}

#[cfg(test)]
mod tests {
    use cuse::inproc::InProcKernel;
    use cuse::{DeviceInfo, Session};
    use ioctl_abi::cstr;
    use ioctl_abi::media::{media_device_info, MEDIA_IOC_DEVICE_INFO};
    use media_graph::MediaDevice;
    use omap3isp::Board;
    use zerocopy::{FromBytes, IntoBytes};

    use super::*;

    fn start(board: Board) -> InProcKernel {
        let dev = MediaDevice::new(board.media_device_info(0x060100));
        let k = InProcKernel::new();
        let s = Session::start(
            k.transport(),
            &DeviceInfo::new("media0"),
            MediaNode::new(Arc::new(dev)),
        )
        .unwrap();
        std::thread::spawn(move || s.run(1));
        k
    }

    #[test]
    fn device_info_over_the_wire() {
        let k = start(Board::N900);
        let f = k.open(libc::O_RDWR).unwrap();
        k.memory()
            .map(0x1000, media_device_info::zeroed().as_bytes().to_vec());
        assert_eq!(f.ioctl(MEDIA_IOC_DEVICE_INFO, 0x1000), Ok(0));
        let i = media_device_info::read_from_bytes(&k.memory().region(0x1000).unwrap()).unwrap();
        assert_eq!(cstr(&i.driver), "omap3isp");
        assert_eq!(cstr(&i.model), "TI OMAP3 ISP");
        assert_eq!(cstr(&i.serial), "");
        assert_eq!(cstr(&i.bus_info), "platform:480bc000.isp");
        assert_eq!(i.hw_revision, 0x20);
        assert_eq!((i.media_version, i.driver_version), (0x060100, 0x060100));
    }

    #[test]
    fn unknown_ioctls_bad_pointers_read_and_poll() {
        let k = start(Board::BeagleboardXm);
        let f = k.open(libc::O_RDWR).unwrap();
        assert_eq!(f.ioctl(0xc0487c10, 0x1000), Err(Errno::ENOTTY));
        assert_eq!(
            f.ioctl(ioctl_abi::videodev2::VIDIOC_QUERYCAP, 0x1000),
            Err(Errno::ENOTTY)
        );
        assert_eq!(
            f.ioctl(MEDIA_IOC_DEVICE_INFO, 0x9999_0000),
            Err(Errno::EFAULT)
        );
        assert_eq!(f.read(10), Err(Errno::EINVAL));
        let mask = (libc::POLLIN | libc::POLLOUT | libc::POLLRDNORM | libc::POLLWRNORM) as u32;
        assert_eq!(f.poll(libc::POLLIN as u32), mask);
    }
}
