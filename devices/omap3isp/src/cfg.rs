//! The CCDC's and the preview engine's private configuration ioctls (`ccdc_config` in
//! ispccdc.c, `preview_config` in isppreview.c): which parts are read from the client's
//! pointers, in which order, and the errnos they end with. The parameters are kept (the next
//! frame would use them); the simulated blocks do not model these hardware functions yet.

use std::mem::size_of;

use ioctl_abi::omap3isp::*;
use media_graph::vb2::UserMemory;
use nix::errno::Errno;
use parking_lot::Mutex;
use zerocopy::FromBytes;

/// `copy_from_user`: all of it or EFAULT (a NULL pointer faults too).
fn copy_in(mem: Option<&dyn UserMemory>, addr: u64, len: usize) -> Result<Vec<u8>, Errno> {
    if len == 0 {
        return Ok(Vec::new());
    }
    if addr == 0 {
        return Err(Errno::EFAULT);
    }
    mem.ok_or(Errno::EFAULT)?
        .read(addr, len)
        .map_err(|_| Errno::EFAULT)
}

/// What a CCDC configuration last set (the driver's shadow registers, simplified).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct CcdcParams {
    pub alaw: bool,
    pub lpf: bool,
    pub obclamp: bool,
    pub bclamp: Option<Vec<u8>>,
    pub blcomp: Option<Vec<u8>>,
    pub fpc: Option<Vec<u8>>,
    pub lsc: Option<(Vec<u8>, Vec<u8>)>,
}

/// VIDIOC_OMAP3ISP_CCDC_CFG. `streaming`: the CCDC is part of a streaming pipeline.
pub fn ccdc_config(
    params: &Mutex<CcdcParams>,
    cfg: &omap3isp_ccdc_update_config,
    mem: Option<&dyn UserMemory>,
    streaming: bool,
) -> Result<(), Errno> {
    let (update, flag) = (u32::from(cfg.update), u32::from(cfg.flag));
    {
        let mut p = params.lock();
        if update & OMAP3ISP_CCDC_ALAW != 0 {
            p.alaw = flag & OMAP3ISP_CCDC_ALAW != 0;
        }
        if update & OMAP3ISP_CCDC_LPF != 0 {
            p.lpf = flag & OMAP3ISP_CCDC_LPF != 0;
        }
        if update & OMAP3ISP_CCDC_BLCLAMP != 0 {
            p.bclamp = Some(copy_in(mem, cfg.bclamp, size_of::<omap3isp_ccdc_bclamp>())?);
            p.obclamp = flag & OMAP3ISP_CCDC_BLCLAMP != 0;
        }
        if update & OMAP3ISP_CCDC_BCOMP != 0 {
            p.blcomp = Some(copy_in(mem, cfg.blcomp, size_of::<omap3isp_ccdc_blcomp>())?);
        }
    }
    if update & OMAP3ISP_CCDC_FPC != 0 {
        // The fault pixel table cannot change under a running CCDC.
        if streaming {
            return Err(Errno::EBUSY);
        }
        if flag & OMAP3ISP_CCDC_FPC != 0 {
            let raw = copy_in(mem, cfg.fpc, size_of::<omap3isp_ccdc_fpc>())?;
            let fpc = omap3isp_ccdc_fpc::read_from_bytes(&raw).map_err(|_| Errno::EFAULT)?;
            // `fpcaddr` is a 32-bit user address in the uapi struct.
            let table = copy_in(mem, u64::from(fpc.fpcaddr), usize::from(fpc.fpnum) * 4)?;
            params.lock().fpc = Some(table);
        } else {
            params.lock().fpc = None;
        }
    }
    // ccdc_lsc_config: both LSC bits or none.
    let lsc = update & (OMAP3ISP_CCDC_CONFIG_LSC | OMAP3ISP_CCDC_TBL_LSC);
    if lsc == 0 {
        return Ok(());
    }
    if lsc != OMAP3ISP_CCDC_CONFIG_LSC | OMAP3ISP_CCDC_TBL_LSC {
        return Err(Errno::EINVAL);
    }
    if flag & OMAP3ISP_CCDC_CONFIG_LSC == 0 {
        params.lock().lsc = None;
        return Ok(());
    }
    let raw = copy_in(mem, cfg.lsc_cfg, size_of::<omap3isp_ccdc_lsc_config>())?;
    let c = omap3isp_ccdc_lsc_config::read_from_bytes(&raw).map_err(|_| Errno::EFAULT)?;
    let table = copy_in(mem, cfg.lsc, c.size as usize)?;
    params.lock().lsc = Some((raw, table));
    Ok(())
}

/// Preview features by `update` bit: the pointer each takes its data from and its size
/// (`update_attrs`); bits without data only switch a feature, bit 11 is unused.
fn prev_attr(bit: u32, c: &omap3isp_prev_update_config) -> Option<(u64, usize)> {
    Some(match bit {
        0 => (c.luma, size_of::<omap3isp_prev_luma>()),
        2 => (c.hmed, size_of::<omap3isp_prev_hmed>()),
        3 => (c.cfa, size_of::<omap3isp_prev_cfa>()),
        4 => (c.csup, size_of::<omap3isp_prev_csup>()),
        5 => (c.wbal, size_of::<omap3isp_prev_wbal>()),
        6 => (c.blkadj, size_of::<omap3isp_prev_blkadj>()),
        7 => (c.rgb2rgb, size_of::<omap3isp_prev_rgbtorgb>()),
        8 => (c.csc, size_of::<omap3isp_prev_csc>()),
        9 => (c.yclimit, size_of::<omap3isp_prev_yclimit>()),
        10 => (c.dcor, size_of::<omap3isp_prev_dcor>()),
        15 => (c.nf, size_of::<omap3isp_prev_nf>()),
        16 => (c.gamma, size_of::<omap3isp_prev_gtables>()),
        1 | 11..=14 => (0, 0),
        _ => return None,
    })
}

/// The preview's features: enabled bits and the data each was given.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PrevParams {
    pub features: u32,
    pub data: std::collections::BTreeMap<u32, Vec<u8>>,
}

/// VIDIOC_OMAP3ISP_PRV_CFG: for each `update` bit, its data is copied when `flag` enables it
/// (a NULL pointer keeps the old data) and the feature switched; a fault stops at that bit with
/// EFAULT, the bits before it taking effect.
pub fn preview_config(
    params: &Mutex<PrevParams>,
    cfg: &omap3isp_prev_update_config,
    mem: Option<&dyn UserMemory>,
) -> Result<(), Errno> {
    if cfg.update == 0 {
        return Ok(());
    }
    let mut p = params.lock();
    for bit in 0..17 {
        let mask = 1u32 << bit;
        if cfg.update & mask == 0 {
            continue;
        }
        let Some((from, size)) = prev_attr(bit, cfg) else {
            continue;
        };
        if cfg.flag & mask != 0 {
            if from != 0 && size != 0 {
                let data = mem
                    .ok_or(Errno::EFAULT)?
                    .read(from, size)
                    .map_err(|_| Errno::EFAULT)?;
                p.data.insert(bit, data);
            }
            p.features |= mask;
        } else {
            p.features &= !mask;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Mem(HashMap<u64, Vec<u8>>);
    impl UserMemory for Mem {
        fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, Errno> {
            self.0
                .get(&addr)
                .filter(|v| v.len() >= len)
                .map(|v| v[..len].to_vec())
                .ok_or(Errno::EFAULT)
        }
        fn write(&self, _: u64, _: &[u8]) -> Result<(), Errno> {
            Err(Errno::EFAULT)
        }
    }

    #[test]
    fn ccdc_config_order_and_errnos() {
        let p = Mutex::new(CcdcParams::default());
        let mut mem = HashMap::new();
        mem.insert(0x1000, vec![1, 2, 3, 4, 5, 6]);
        // fpnum 2 at 0x3000.
        mem.insert(0x2000, vec![2, 0, 0, 0, 0, 0x30, 0, 0]);
        mem.insert(0x3000, vec![9; 8]);
        let m = Mem(mem);
        let mut c = omap3isp_ccdc_update_config::zeroed();
        c.update = (OMAP3ISP_CCDC_ALAW | OMAP3ISP_CCDC_BLCLAMP) as u16;
        c.flag = (OMAP3ISP_CCDC_ALAW | OMAP3ISP_CCDC_BLCLAMP) as u16;
        assert_eq!(
            ccdc_config(&p, &c, Some(&m), false),
            Err(Errno::EFAULT),
            "NULL bclamp"
        );
        assert!(p.lock().alaw, "what came before the fault stays");
        c.bclamp = 0x1000;
        assert_eq!(ccdc_config(&p, &c, Some(&m), false), Ok(()));
        assert_eq!(p.lock().bclamp.as_deref(), Some(&[1, 2, 3, 4, 5, 6][..]));
        // The fault pixel table: EBUSY while streaming, then the table through fpcaddr.
        let mut f = omap3isp_ccdc_update_config::zeroed();
        f.update = OMAP3ISP_CCDC_FPC as u16;
        f.flag = OMAP3ISP_CCDC_FPC as u16;
        f.fpc = 0x2000;
        assert_eq!(ccdc_config(&p, &f, Some(&m), true), Err(Errno::EBUSY));
        assert_eq!(ccdc_config(&p, &f, Some(&m), false), Ok(()));
        assert_eq!(p.lock().fpc.as_ref().map(Vec::len), Some(8));
        // LSC needs both bits.
        let mut l = omap3isp_ccdc_update_config::zeroed();
        l.update = OMAP3ISP_CCDC_CONFIG_LSC as u16;
        assert_eq!(ccdc_config(&p, &l, Some(&m), false), Err(Errno::EINVAL));
        l.update = (OMAP3ISP_CCDC_CONFIG_LSC | OMAP3ISP_CCDC_TBL_LSC) as u16;
        assert_eq!(ccdc_config(&p, &l, Some(&m), false), Ok(()), "disable");
        l.flag = OMAP3ISP_CCDC_CONFIG_LSC as u16;
        assert_eq!(ccdc_config(&p, &l, Some(&m), false), Err(Errno::EFAULT));
    }

    #[test]
    fn preview_config_bits() {
        let p = Mutex::new(PrevParams::default());
        let mut mem = HashMap::new();
        mem.insert(0x1000, vec![7; 6]);
        let m = Mem(mem);
        let mut c = omap3isp_prev_update_config::zeroed();
        assert_eq!(preview_config(&p, &c, None), Ok(()), "update 0");
        c.update = OMAP3ISP_PREV_WB | OMAP3ISP_PREV_INVALAW | OMAP3ISP_PREV_GAMMA;
        c.flag = OMAP3ISP_PREV_WB | OMAP3ISP_PREV_INVALAW;
        c.wbal = 0x1000;
        assert_eq!(preview_config(&p, &c, Some(&m)), Ok(()));
        let got = p.lock().clone();
        assert_eq!(got.features, OMAP3ISP_PREV_WB | OMAP3ISP_PREV_INVALAW);
        assert_eq!(got.data.get(&5).map(Vec::len), Some(6));
        // A NULL pointer with the flag set switches the feature on without data.
        c.update = OMAP3ISP_PREV_NF;
        c.flag = OMAP3ISP_PREV_NF;
        assert_eq!(preview_config(&p, &c, Some(&m)), Ok(()));
        // A bad pointer: EFAULT.
        c.nf = 0x5000;
        assert_eq!(preview_config(&p, &c, Some(&m)), Err(Errno::EFAULT));
    }
}
