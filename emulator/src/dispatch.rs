//! Ioctl dispatch per node type: decodes the command, moves the argument through the RETRY
//! rounds, calls the node's handler trait and encodes the result. The only place where a
//! handler's `Result` becomes an ioctl return value.

use cuse::{Errno, IoctlRound, ReplyIoctl};
use ioctl_abi::media::MEDIA_IOC_DEVICE_INFO;
use ioctl_abi::{ioc_dir, ioc_size, IOC_READ, IOC_WRITE};
use media_graph::MediaIoctls;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// A fixed-size ioctl whose argument is one `T` at `arg`: copied in if the command has
/// `_IOC_WRITE`, out if it has `_IOC_READ`, as `video_usercopy`/`media_device_ioctl` do.
/// Round 1 asks for the struct; round 2 runs `f` and returns the struct.
pub fn fixed<T, F>(round: &mut IoctlRound<'_>, reply: ReplyIoctl, f: F)
where
    T: FromBytes + IntoBytes + Immutable + KnownLayout,
    F: FnOnce(T) -> Result<(i32, T), Errno>,
{
    let req = *round.request();
    debug_assert_eq!(ioc_size(req.cmd), core::mem::size_of::<T>());
    let dir = ioc_dir(req.cmd);
    let input = if dir & IOC_WRITE != 0 {
        match round.input_struct::<T>(req.arg) {
            Ok(v) => v,
            Err(e) => return reply.error(e),
        }
    } else {
        Some(T::new_zeroed())
    };
    if dir & IOC_READ != 0 {
        round.output(req.arg, core::mem::size_of::<T>());
    }
    let Some(value) = input.filter(|_| round.is_complete()) else {
        return reply.retry_round(round);
    };
    match f(value) {
        Ok((ret, out)) if dir & IOC_READ != 0 => reply.finish(round, Ok(ret), &[out.as_bytes()]),
        Ok((ret, _)) => reply.finish(round, Ok(ret), &[]),
        // Like video_usercopy, nothing is copied back on failure.
        Err(e) => reply.error(e),
    }
}

/// `/dev/mediaN`.
pub fn media(dev: &dyn MediaIoctls, round: &mut IoctlRound<'_>, reply: ReplyIoctl) {
    match round.request().cmd {
        MEDIA_IOC_DEVICE_INFO => fixed(round, reply, |_: ioctl_abi::media::media_device_info| {
            dev.device_info().map(|i| (0, i))
        }),
        _ => reply.error(Errno::ENOTTY),
    }
}
