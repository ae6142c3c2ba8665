//! The statistics engines' private ioctls against a running `mcemu serve` (default graph):
//!
//!   isp-stat-client [AEWB_NODE AF_NODE HIST_NODE CCDC_NODE]
//!   isp-stat-client streaming AEWB_NODE HIST_NODE    (a pipeline through the CCDC is streaming)
//!   isp-stat-client cfg CCDC_NODE PREVIEW_NODE [streaming]   CCDC_CFG and PRV_CFG
//!
//! The ioctls a 3A loop issues before streaming: configure, enable, request, with the driver's
//! corrections and errnos; and while streaming, the events and the statistics data. Prints
//! TAP-like lines; exits 1 on a failure.

use std::os::fd::{AsRawFd, OwnedFd};

use ioctl_abi::omap3isp::*;
use mcemu_tests::{expect, open_or_panic, Report};
use nix::errno::Errno;
use zerocopy::{FromBytes, IntoBytes};

/// ioctl(2) with `arg` as the argument buffer (its size is the command's).
fn ioctl<T: IntoBytes + zerocopy::FromBytes>(
    fd: &OwnedFd,
    cmd: u32,
    arg: &mut T,
) -> Result<(), Errno> {
    assert_eq!(ioctl_abi::ioc_size(cmd), core::mem::size_of::<T>());
    // SAFETY: `arg` is a live, writable value of exactly the size the command encodes.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), cmd as _, arg.as_mut_bytes().as_mut_ptr()) };
    Errno::result(r).map(|_| ())
}

fn errno(r: Result<(), Errno>, want: Errno) -> Result<(), String> {
    expect(r == Err(want), || format!("got {r:?}, want {want}"))
}

fn aewb_config() -> omap3isp_h3a_aewb_config {
    let mut c = omap3isp_h3a_aewb_config::zeroed();
    c.saturation_limit = 1023;
    c.win_height = 16;
    c.win_width = 16;
    c.ver_win_count = 8;
    c.hor_win_count = 8;
    c.blk_ver_win_start = 130;
    c.blk_win_height = 2;
    c.subsample_ver_inc = 2;
    c.subsample_hor_inc = 2;
    c
}

/// Waits (10 s at most) for an event on `fd` and dequeues it.
fn next_event(fd: &OwnedFd) -> Result<ioctl_abi::videodev2::v4l2_event, String> {
    let mut p = [libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLPRI,
        revents: 0,
    }];
    // SAFETY: `p` is a valid array of one pollfd.
    let n = unsafe { libc::poll(p.as_mut_ptr(), 1, 10_000) };
    if n != 1 {
        return Err(format!("poll(POLLPRI) returned {n} ({:#x})", p[0].revents));
    }
    let mut ev = ioctl_abi::videodev2::v4l2_event::zeroed();
    ioctl(fd, ioctl_abi::videodev2::VIDIOC_DQEVENT, &mut ev).map_err(|e| e.to_string())?;
    Ok(ev)
}

/// STAT_REQ into `buf`; returns the filled struct.
fn stat_req(fd: &OwnedFd, buf: &mut [u8]) -> Result<omap3isp_stat_data, Errno> {
    let mut d = omap3isp_stat_data::zeroed();
    d.buf = buf.as_mut_ptr() as u64;
    d.buf_size = buf.len() as u32;
    ioctl(fd, VIDIOC_OMAP3ISP_STAT_REQ, &mut d).map(|_| d)
}

/// The statistics of a streaming pipeline: each engine's event, then its data.
fn streaming(aewb: &OwnedFd, hist: &OwnedFd, r: &mut Report) {
    use ioctl_abi::videodev2::{v4l2_event_subscription, VIDIOC_SUBSCRIBE_EVENT};
    let mut c = aewb_config();
    r.check(
        "AEWB_CFG",
        ioctl(aewb, VIDIOC_OMAP3ISP_AEWB_CFG, &mut c).map_err(|e| e.to_string()),
    );
    let mut h = omap3isp_hist_config::zeroed();
    h.num_regions = 1;
    h.hist_bins = 3; // 256 bins
    h.region[0].h_end = 63;
    h.region[0].v_end = 31;
    h.wg = [1; 4];
    r.check(
        "HIST_CFG",
        ioctl(hist, VIDIOC_OMAP3ISP_HIST_CFG, &mut h).map_err(|e| e.to_string()),
    );
    for (fd, ty, name) in [
        (aewb, V4L2_EVENT_OMAP3ISP_AEWB, "AEWB"),
        (hist, V4L2_EVENT_OMAP3ISP_HIST, "histogram"),
    ] {
        let mut sub = v4l2_event_subscription::zeroed();
        sub.type_ = ty;
        r.check(
            &format!("{name}: subscribe to its event"),
            ioctl(fd, VIDIOC_SUBSCRIBE_EVENT, &mut sub).map_err(|e| e.to_string()),
        );
        let mut on = 1u64;
        r.check(
            &format!("{name}: STAT_EN"),
            ioctl(fd, VIDIOC_OMAP3ISP_STAT_EN, &mut on).map_err(|e| e.to_string()),
        );
    }
    let ev = next_event(aewb);
    r.check(
        "AEWB: an event arrives while streaming",
        ev.as_ref().map(|_| ()).map_err(Clone::clone),
    );
    let (frame, counter) = ev
        .map(|e| {
            let st = omap3isp_stat_event_status::read_from_prefix(&e.u)
                .map(|(s, _)| s)
                .unwrap();
            (st.frame_number, st.config_counter)
        })
        .unwrap_or_default();
    r.check(
        "AEWB: the event carries the configuration counter",
        expect(counter == c.config_counter, || {
            format!("{counter} vs {}", { c.config_counter })
        }),
    );
    let mut small = vec![0u8; c.buf_size as usize - 1];
    r.check(
        "AEWB: STAT_REQ into a buffer too small is EINVAL",
        errno(stat_req(aewb, &mut small).map(|_| ()), Errno::EINVAL),
    );
    let mut d = omap3isp_stat_data::zeroed();
    d.buf = 16; // unmapped
    d.buf_size = c.buf_size;
    r.check(
        "AEWB: STAT_REQ into an unmapped buffer is EFAULT",
        errno(ioctl(aewb, VIDIOC_OMAP3ISP_STAT_REQ, &mut d), Errno::EFAULT),
    );
    let mut buf = vec![0u8; c.buf_size as usize];
    match stat_req(aewb, &mut buf) {
        Ok(d) => {
            r.check(
                "AEWB: STAT_REQ returns the event's frame, size and counter",
                expect(
                    u32::from(d.frame_number) == frame & 0xffff
                        && d.buf_size == c.buf_size
                        && d.config_counter == counter
                        && d.ts.tv_sec > 0,
                    || {
                        format!(
                            "frame {} (event {frame}) size {} counter {}",
                            { d.frame_number },
                            { d.buf_size },
                            { d.config_counter }
                        )
                    },
                ),
            );
            // The first window's four colour sums of a 16x16 window subsampled by 2.
            let sums: Vec<u32> = buf[..16]
                .chunks(4)
                .map(|b| u32::from_ne_bytes(b.try_into().unwrap()))
                .collect();
            r.check(
                "AEWB: the windows hold sums of the scene's samples",
                expect(
                    sums.iter().any(|&s| s > 0) && sums.iter().all(|&s| s <= 64 * 1023),
                    || format!("{sums:?}"),
                ),
            );
        }
        Err(e) => r.check("AEWB: STAT_REQ returns data", Err(e.to_string())),
    }
    r.check("histogram: an event arrives", next_event(hist).map(|_| ()));
    let mut hb = vec![0u8; h.buf_size as usize];
    match stat_req(hist, &mut hb) {
        Ok(_) => {
            let total: u64 = hb[..256 * 4 * 4]
                .chunks(4)
                .map(|b| u64::from(u32::from_ne_bytes(b.try_into().unwrap())))
                .sum();
            r.check(
                "histogram: the bins count every sample of the 64x32 region",
                expect(total == 64 * 32, || format!("{total}")),
            );
        }
        Err(e) => r.check("histogram: STAT_REQ returns data", Err(e.to_string())),
    }
}

/// VIDIOC_OMAP3ISP_CCDC_CFG and PRV_CFG: what the drivers read through the pointers, and
/// their errnos. With `streaming`, the CCDC is streaming (its fault pixel table is then EBUSY).
fn cfg(ccdc: &OwnedFd, preview: &OwnedFd, streaming: bool, r: &mut Report) {
    let mut bclamp = omap3isp_ccdc_bclamp::zeroed();
    bclamp.obgain = 1;
    let mut c = omap3isp_ccdc_update_config::zeroed();
    c.update = (OMAP3ISP_CCDC_ALAW | OMAP3ISP_CCDC_BLCLAMP) as u16;
    c.flag = c.update;
    r.check(
        "CCDC_CFG: BLCLAMP with a NULL pointer is EFAULT",
        errno(ioctl(ccdc, VIDIOC_OMAP3ISP_CCDC_CFG, &mut c), Errno::EFAULT),
    );
    c.bclamp = bclamp.as_bytes().as_ptr() as u64;
    r.check(
        "CCDC_CFG: A-law and a black clamp",
        ioctl(ccdc, VIDIOC_OMAP3ISP_CCDC_CFG, &mut c).map_err(|e| e.to_string()),
    );
    let mut l = omap3isp_ccdc_update_config::zeroed();
    l.update = OMAP3ISP_CCDC_CONFIG_LSC as u16;
    r.check(
        "CCDC_CFG: lens shading needs both LSC bits (EINVAL)",
        errno(ioctl(ccdc, VIDIOC_OMAP3ISP_CCDC_CFG, &mut l), Errno::EINVAL),
    );
    let table = [0u32; 4];
    let mut fpc = omap3isp_ccdc_fpc::zeroed();
    fpc.fpnum = 4;
    // The table address field is 32 bits wide: only a low mapping can be named.
    let low = low_page();
    // SAFETY: `low` is a fresh private anonymous mapping of one page, writable.
    unsafe { std::ptr::copy_nonoverlapping(table.as_ptr() as *const u8, low as *mut u8, 16) };
    fpc.fpcaddr = low as u32;
    let mut f = omap3isp_ccdc_update_config::zeroed();
    f.update = OMAP3ISP_CCDC_FPC as u16;
    f.flag = OMAP3ISP_CCDC_FPC as u16;
    f.fpc = fpc.as_bytes().as_ptr() as u64;
    if streaming {
        r.check(
            "CCDC_CFG: the fault pixel table while streaming is EBUSY",
            errno(ioctl(ccdc, VIDIOC_OMAP3ISP_CCDC_CFG, &mut f), Errno::EBUSY),
        );
    } else {
        r.check(
            "CCDC_CFG: a fault pixel table of 4 entries",
            ioctl(ccdc, VIDIOC_OMAP3ISP_CCDC_CFG, &mut f).map_err(|e| e.to_string()),
        );
    }
    let mut p = omap3isp_prev_update_config::zeroed();
    r.check(
        "PRV_CFG: update 0 does nothing",
        ioctl(preview, VIDIOC_OMAP3ISP_PRV_CFG, &mut p).map_err(|e| e.to_string()),
    );
    let wb = omap3isp_prev_wbal::zeroed();
    p.update = OMAP3ISP_PREV_WB | OMAP3ISP_PREV_NF;
    p.flag = OMAP3ISP_PREV_WB | OMAP3ISP_PREV_NF;
    p.wbal = wb.as_bytes().as_ptr() as u64;
    r.check(
        "PRV_CFG: white balance, noise filter with a NULL pointer (kept data)",
        ioctl(preview, VIDIOC_OMAP3ISP_PRV_CFG, &mut p).map_err(|e| e.to_string()),
    );
    p.nf = 16;
    r.check(
        "PRV_CFG: a bad pointer is EFAULT",
        errno(
            ioctl(preview, VIDIOC_OMAP3ISP_PRV_CFG, &mut p),
            Errno::EFAULT,
        ),
    );
    r.check(
        "PRV_CFG on the CCDC is ENOTTY",
        errno(ioctl(ccdc, VIDIOC_OMAP3ISP_PRV_CFG, &mut p), Errno::ENOTTY),
    );
}

/// One page mapped below 4 GiB (MAP_32BIT).
fn low_page() -> usize {
    // SAFETY: an anonymous private mapping with no address hint; the result is checked.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED, "mmap below 4 GiB");
    p as usize
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("cfg") {
        let mut r = Report::default();
        let (ccdc, preview) = (open_or_panic(&args[1]), open_or_panic(&args[2]));
        cfg(
            &ccdc,
            &preview,
            args.get(3).map(String::as_str) == Some("streaming"),
            &mut r,
        );
        std::process::exit(r.finish());
    }
    if args.first().map(String::as_str) == Some("streaming") {
        let mut r = Report::default();
        let (aewb, hist) = (open_or_panic(&args[1]), open_or_panic(&args[2]));
        streaming(&aewb, &hist, &mut r);
        std::process::exit(r.finish());
    }
    let node = |i: usize, d: &str| args.get(i).cloned().unwrap_or_else(|| d.into());
    let (aewb, af, hist, ccdc) = (
        open_or_panic(&node(0, "/dev/v4l-subdev5")),
        open_or_panic(&node(1, "/dev/v4l-subdev6")),
        open_or_panic(&node(2, "/dev/v4l-subdev7")),
        open_or_panic(&node(3, "/dev/v4l-subdev2")),
    );
    let mut r = Report::default();

    let mut on = 1u64;
    r.check(
        "AEWB: STAT_EN before any configuration is EINVAL",
        errno(
            ioctl(&aewb, VIDIOC_OMAP3ISP_STAT_EN, &mut on),
            Errno::EINVAL,
        ),
    );
    let mut c = aewb_config();
    c.win_width = 17;
    r.check(
        "AEWB_CFG: an odd window width is EINVAL",
        errno(
            ioctl(&aewb, VIDIOC_OMAP3ISP_AEWB_CFG, &mut c),
            Errno::EINVAL,
        ),
    );
    let mut c = aewb_config();
    r.check(
        "AEWB_CFG: a valid configuration",
        ioctl(&aewb, VIDIOC_OMAP3ISP_AEWB_CFG, &mut c).map_err(|e| e.to_string()),
    );
    r.check(
        "AEWB_CFG: buf_size raised to (9 x 8 windows + 9) x 16 bytes",
        expect({ c.buf_size } == 1296, || {
            format!("buf_size {}", { c.buf_size })
        }),
    );
    r.check(
        "AEWB_CFG: config_counter 1 tags this configuration's data",
        expect({ c.config_counter } == 1, || {
            format!("config_counter {}", { c.config_counter })
        }),
    );
    let mut data = omap3isp_stat_data::zeroed();
    r.check(
        "STAT_REQ on a disabled engine is EINVAL",
        errno(
            ioctl(&aewb, VIDIOC_OMAP3ISP_STAT_REQ, &mut data),
            Errno::EINVAL,
        ),
    );
    r.check(
        "STAT_EN 1 once configured",
        ioctl(&aewb, VIDIOC_OMAP3ISP_STAT_EN, &mut on).map_err(|e| e.to_string()),
    );
    r.check(
        "STAT_REQ before a frame enabled the engine is still EINVAL",
        errno(
            ioctl(&aewb, VIDIOC_OMAP3ISP_STAT_REQ, &mut data),
            Errno::EINVAL,
        ),
    );
    let mut big = aewb_config();
    big.ver_win_count = 128;
    big.hor_win_count = 36;
    r.check(
        "AEWB_CFG needing bigger buffers while enabled is EBUSY",
        errno(
            ioctl(&aewb, VIDIOC_OMAP3ISP_AEWB_CFG, &mut big),
            Errno::EBUSY,
        ),
    );
    let mut off = 0u64;
    r.check(
        "STAT_EN 0, then the bigger configuration",
        ioctl(&aewb, VIDIOC_OMAP3ISP_STAT_EN, &mut off)
            .and_then(|_| ioctl(&aewb, VIDIOC_OMAP3ISP_AEWB_CFG, &mut big))
            .map_err(|e| e.to_string())
            .and_then(|_| {
                expect(
                    ({ big.buf_size }, { big.config_counter }) == (83600, 2),
                    || {
                        format!("buf_size {} counter {}", { big.buf_size }, {
                            big.config_counter
                        })
                    },
                )
            }),
    );
    let mut afc = omap3isp_h3a_af_config::zeroed();
    r.check(
        "AF_CFG on the AEWB node is ENOTTY",
        errno(
            ioctl(&aewb, VIDIOC_OMAP3ISP_AF_CFG, &mut afc),
            Errno::ENOTTY,
        ),
    );
    afc.paxel.h_cnt = 4;
    afc.paxel.v_cnt = 4;
    afc.paxel.width = 16;
    afc.paxel.height = 2;
    afc.paxel.line_inc = 2;
    afc.paxel.h_start = 1;
    afc.iir.coeff_set0[3] = 4096;
    r.check(
        "AF_CFG: an IIR coefficient above 4095 is EINVAL",
        errno(ioctl(&af, VIDIOC_OMAP3ISP_AF_CFG, &mut afc), Errno::EINVAL),
    );
    afc.iir.coeff_set0[3] = 4095;
    r.check(
        "AF_CFG: 4 x 4 paxels of 48 bytes",
        ioctl(&af, VIDIOC_OMAP3ISP_AF_CFG, &mut afc)
            .map_err(|e| e.to_string())
            .and_then(|_| expect({ afc.buf_size } == 768, || format!("{}", { afc.buf_size }))),
    );
    let mut h = omap3isp_hist_config::zeroed();
    h.num_regions = 1;
    h.hist_bins = 3; // 256 bins
    h.region[0].h_end = 639;
    h.region[0].v_end = 479;
    r.check(
        "HIST_CFG: 256 bins, one region; num_acc_frames 0 comes back as 1",
        ioctl(&hist, VIDIOC_OMAP3ISP_HIST_CFG, &mut h)
            .map_err(|e| e.to_string())
            .and_then(|_| {
                expect(({ h.buf_size }, h.num_acc_frames) == (4096, 1), || {
                    format!("buf_size {} acc {}", { h.buf_size }, h.num_acc_frames)
                })
            }),
    );
    h.num_regions = 2;
    r.check(
        "HIST_CFG: 256 bins need a single region (EINVAL)",
        errno(
            ioctl(&hist, VIDIOC_OMAP3ISP_HIST_CFG, &mut h),
            Errno::EINVAL,
        ),
    );
    let mut c = aewb_config();
    r.check(
        "the CCDC has no statistics ioctls (ENOTTY)",
        errno(
            ioctl(&ccdc, VIDIOC_OMAP3ISP_AEWB_CFG, &mut c),
            Errno::ENOTTY,
        ),
    );
    std::process::exit(r.finish());
}
