//! `linux/omap3isp.h`: the OMAP3 ISP private ioctls, their configuration structs and events.
//! Pointer fields are client addresses (`u64`).

use core::mem::size_of;

use crate::videodev2::{timeval, V4L2_EVENT_PRIVATE_START};
use crate::{abi_consts, abi_ioctls, abi_structs, iowr};

pub const BASE_VIDIOC_PRIVATE: u8 = 192;
pub const OMAP3ISP_HIST_MAX_REGIONS: usize = 4;
pub const OMAP3ISP_HIST_MAX_WG: usize = 4;
pub const OMAP3ISP_AF_NUM_COEF: usize = 11;
pub const OMAP3ISP_RGB_MAX: usize = 3;
pub const OMAP3ISP_PREV_NF_TBL_SIZE: usize = 64;
pub const OMAP3ISP_PREV_CFA_TBL_SIZE: usize = 576;
pub const OMAP3ISP_PREV_CFA_BLK_SIZE: usize = OMAP3ISP_PREV_CFA_TBL_SIZE / 4;
pub const OMAP3ISP_PREV_GAMMA_TBL_SIZE: usize = 1024;
pub const OMAP3ISP_PREV_YENH_TBL_SIZE: usize = 128;
pub const OMAP3ISP_PREV_DETECT_CORRECT_CHANNELS: usize = 4;

abi_structs! {
    #[repr(C)]
    struct omap3isp_stat_event_status(8) {
        frame_number: u32,
        config_counter: u16,
        buf_err: u8,
        _pad0: u8,
    }

    #[repr(C)]
    struct omap3isp_h3a_aewb_config(32) {
        buf_size: u32,
        config_counter: u16,
        saturation_limit: u16,
        win_height: u16,
        win_width: u16,
        ver_win_count: u16,
        hor_win_count: u16,
        ver_win_start: u16,
        hor_win_start: u16,
        blk_ver_win_start: u16,
        blk_win_height: u16,
        subsample_ver_inc: u16,
        subsample_hor_inc: u16,
        alaw_enable: u8,
        _pad0: [u8; 3],
    }

    /// `buf` is the client address of the statistics buffer.
    #[repr(C)]
    struct omap3isp_stat_data(40) {
        ts: timeval,
        buf: u64,
        buf_size: u32,
        frame_number: u16,
        cur_frame: u16,
        config_counter: u16,
        _pad0: [u16; 3],
    }

    #[repr(C)]
    struct omap3isp_hist_region(8) {
        h_start: u16,
        h_end: u16,
        v_start: u16,
        v_end: u16,
    }

    #[repr(C)]
    struct omap3isp_hist_config(48) {
        buf_size: u32,
        config_counter: u16,
        num_acc_frames: u8,
        _pad0: u8,
        hist_bins: u16,
        cfa: u8,
        wg: [u8; OMAP3ISP_HIST_MAX_WG],
        num_regions: u8,
        region: [omap3isp_hist_region; OMAP3ISP_HIST_MAX_REGIONS],
    }

    #[repr(C)]
    struct omap3isp_h3a_af_hmf(2) {
        enable: u8,
        threshold: u8,
    }

    #[repr(C)]
    struct omap3isp_h3a_af_iir(46) {
        h_start: u16,
        coeff_set0: [u16; OMAP3ISP_AF_NUM_COEF],
        coeff_set1: [u16; OMAP3ISP_AF_NUM_COEF],
    }

    #[repr(C)]
    struct omap3isp_h3a_af_paxel(10) {
        h_start: u16,
        v_start: u16,
        width: u8,
        height: u8,
        h_cnt: u8,
        v_cnt: u8,
        line_inc: u8,
        _pad0: u8,
    }

    #[repr(C)]
    struct omap3isp_h3a_af_config(76) {
        buf_size: u32,
        config_counter: u16,
        hmf: omap3isp_h3a_af_hmf,
        iir: omap3isp_h3a_af_iir,
        paxel: omap3isp_h3a_af_paxel,
        rgb_pos: u32,
        fvmode: u32,
        alaw_enable: u8,
        _pad0: [u8; 3],
    }

    #[repr(C)]
    struct omap3isp_ccdc_lsc_config(20) {
        offset: u16,
        gain_mode_n: u8,
        gain_mode_m: u8,
        gain_format: u8,
        _pad0: u8,
        fmtsph: u16,
        fmtlnh: u16,
        fmtslv: u16,
        fmtlnv: u16,
        initial_x: u8,
        initial_y: u8,
        size: u32,
    }

    #[repr(C)]
    struct omap3isp_ccdc_bclamp(6) {
        obgain: u8,
        obstpixel: u8,
        oblines: u8,
        oblen: u8,
        dcsubval: u16,
    }

    #[repr(C)]
    struct omap3isp_ccdc_fpc(8) {
        fpnum: u16,
        _pad0: u16,
        fpcaddr: u32,
    }

    #[repr(C)]
    struct omap3isp_ccdc_blcomp(4) {
        b_mg: u8,
        gb_g: u8,
        gr_cy: u8,
        r_ye: u8,
    }

    #[repr(C)]
    struct omap3isp_ccdc_culling(6) {
        v_pattern: u8,
        _pad0: u8,
        h_odd: u16,
        h_even: u16,
    }

    /// Every pointer is a client address; NULL means "not updated".
    #[repr(C)]
    struct omap3isp_ccdc_update_config(56) {
        update: u16,
        flag: u16,
        alawip: u32,
        bclamp: u64,
        blcomp: u64,
        fpc: u64,
        lsc_cfg: u64,
        cull: u64,
        lsc: u64,
    }

    #[repr(C)]
    struct omap3isp_prev_hmed(3) {
        odddist: u8,
        evendist: u8,
        thres: u8,
    }

    #[repr(C)]
    struct omap3isp_prev_cfa(2312) {
        format: u32,
        gradthrs_vert: u8,
        gradthrs_horz: u8,
        _pad0: u16,
        table: [[u32; OMAP3ISP_PREV_CFA_BLK_SIZE]; 4],
    }

    #[repr(C)]
    struct omap3isp_prev_csup(3) {
        gain: u8,
        thres: u8,
        hypf_en: u8,
    }

    #[repr(C)]
    struct omap3isp_prev_wbal(6) {
        dgain: u16,
        coef3: u8,
        coef2: u8,
        coef1: u8,
        coef0: u8,
    }

    #[repr(C)]
    struct omap3isp_prev_blkadj(3) {
        red: u8,
        green: u8,
        blue: u8,
    }

    #[repr(C)]
    struct omap3isp_prev_rgbtorgb(24) {
        matrix: [[u16; OMAP3ISP_RGB_MAX]; OMAP3ISP_RGB_MAX],
        offset: [u16; OMAP3ISP_RGB_MAX],
    }

    #[repr(C)]
    struct omap3isp_prev_csc(24) {
        matrix: [[u16; OMAP3ISP_RGB_MAX]; OMAP3ISP_RGB_MAX],
        offset: [i16; OMAP3ISP_RGB_MAX],
    }

    #[repr(C)]
    struct omap3isp_prev_yclimit(4) {
        minC: u8,
        maxC: u8,
        minY: u8,
        maxY: u8,
    }

    #[repr(C)]
    struct omap3isp_prev_dcor(20) {
        couplet_mode_en: u8,
        _pad0: [u8; 3],
        detect_correct: [u32; OMAP3ISP_PREV_DETECT_CORRECT_CHANNELS],
    }

    #[repr(C)]
    struct omap3isp_prev_nf(260) {
        spread: u8,
        _pad0: [u8; 3],
        table: [u32; OMAP3ISP_PREV_NF_TBL_SIZE],
    }

    #[repr(C)]
    struct omap3isp_prev_gtables(12288) {
        red: [u32; OMAP3ISP_PREV_GAMMA_TBL_SIZE],
        green: [u32; OMAP3ISP_PREV_GAMMA_TBL_SIZE],
        blue: [u32; OMAP3ISP_PREV_GAMMA_TBL_SIZE],
    }

    #[repr(C)]
    struct omap3isp_prev_luma(512) {
        table: [u32; OMAP3ISP_PREV_YENH_TBL_SIZE],
    }

    /// Every pointer is a client address; NULL means "not updated".
    #[repr(C)]
    struct omap3isp_prev_update_config(112) {
        update: u32,
        flag: u32,
        shading_shift: u32,
        _pad0: u32,
        luma: u64,
        hmed: u64,
        cfa: u64,
        csup: u64,
        wbal: u64,
        blkadj: u64,
        rgb2rgb: u64,
        csc: u64,
        yclimit: u64,
        dcor: u64,
        nf: u64,
        gamma: u64,
    }
}

abi_ioctls! {
    VIDIOC_OMAP3ISP_CCDC_CFG = iowr(b'V', BASE_VIDIOC_PRIVATE + 1, size_of::<omap3isp_ccdc_update_config>());
    VIDIOC_OMAP3ISP_PRV_CFG = iowr(b'V', BASE_VIDIOC_PRIVATE + 2, size_of::<omap3isp_prev_update_config>());
    VIDIOC_OMAP3ISP_AEWB_CFG = iowr(b'V', BASE_VIDIOC_PRIVATE + 3, size_of::<omap3isp_h3a_aewb_config>());
    VIDIOC_OMAP3ISP_HIST_CFG = iowr(b'V', BASE_VIDIOC_PRIVATE + 4, size_of::<omap3isp_hist_config>());
    VIDIOC_OMAP3ISP_AF_CFG = iowr(b'V', BASE_VIDIOC_PRIVATE + 5, size_of::<omap3isp_h3a_af_config>());
    VIDIOC_OMAP3ISP_STAT_REQ = iowr(b'V', BASE_VIDIOC_PRIVATE + 6, size_of::<omap3isp_stat_data>());
    VIDIOC_OMAP3ISP_STAT_EN = iowr(b'V', BASE_VIDIOC_PRIVATE + 7, size_of::<u64>());
}

abi_consts! {
    OMAP3ISP_CCDC_ALAW = 1 << 0;
    OMAP3ISP_CCDC_LPF = 1 << 1;
    OMAP3ISP_CCDC_BLCLAMP = 1 << 2;
    OMAP3ISP_CCDC_BCOMP = 1 << 3;
    OMAP3ISP_CCDC_FPC = 1 << 4;
    OMAP3ISP_CCDC_CULL = 1 << 5;
    OMAP3ISP_CCDC_CONFIG_LSC = 1 << 7;
    OMAP3ISP_CCDC_TBL_LSC = 1 << 8;
    OMAP3ISP_PREV_LUMAENH = 1 << 0;
    OMAP3ISP_PREV_INVALAW = 1 << 1;
    OMAP3ISP_PREV_HRZ_MED = 1 << 2;
    OMAP3ISP_PREV_CFA = 1 << 3;
    OMAP3ISP_PREV_CHROMA_SUPP = 1 << 4;
    OMAP3ISP_PREV_WB = 1 << 5;
    OMAP3ISP_PREV_BLKADJ = 1 << 6;
    OMAP3ISP_PREV_RGB2RGB = 1 << 7;
    OMAP3ISP_PREV_COLOR_CONV = 1 << 8;
    OMAP3ISP_PREV_YC_LIMIT = 1 << 9;
    OMAP3ISP_PREV_DEFECT_COR = 1 << 10;
    OMAP3ISP_PREV_DRK_FRM_CAPTURE = 1 << 12;
    OMAP3ISP_PREV_DRK_FRM_SUBTRACT = 1 << 13;
    OMAP3ISP_PREV_LENS_SHADING = 1 << 14;
    OMAP3ISP_PREV_NF = 1 << 15;
    OMAP3ISP_PREV_GAMMA = 1 << 16;
    V4L2_EVENT_OMAP3ISP_CLASS = V4L2_EVENT_PRIVATE_START | 0x100;
    V4L2_EVENT_OMAP3ISP_AEWB = V4L2_EVENT_OMAP3ISP_CLASS | 0x1;
    V4L2_EVENT_OMAP3ISP_AF = V4L2_EVENT_OMAP3ISP_CLASS | 0x2;
    V4L2_EVENT_OMAP3ISP_HIST = V4L2_EVENT_OMAP3ISP_CLASS | 0x3;
    OMAP3ISP_AEWB_MAX_SATURATION_LIM = 1023;
    OMAP3ISP_AEWB_MIN_WIN_H = 2;
    OMAP3ISP_AEWB_MAX_WIN_H = 256;
    OMAP3ISP_AEWB_MIN_WIN_W = 6;
    OMAP3ISP_AEWB_MAX_WIN_W = 256;
    OMAP3ISP_AEWB_MIN_WINVC = 1;
    OMAP3ISP_AEWB_MIN_WINHC = 1;
    OMAP3ISP_AEWB_MAX_WINVC = 128;
    OMAP3ISP_AEWB_MAX_WINHC = 36;
    OMAP3ISP_AEWB_MAX_WINSTART = 4095;
    OMAP3ISP_AEWB_MIN_SUB_INC = 2;
    OMAP3ISP_AEWB_MAX_SUB_INC = 32;
    OMAP3ISP_AEWB_MAX_BUF_SIZE = 83600;
    OMAP3ISP_AF_IIRSH_MIN = 0;
    OMAP3ISP_AF_IIRSH_MAX = 4095;
    OMAP3ISP_AF_PAXEL_HORIZONTAL_COUNT_MIN = 1;
    OMAP3ISP_AF_PAXEL_HORIZONTAL_COUNT_MAX = 36;
    OMAP3ISP_AF_PAXEL_VERTICAL_COUNT_MIN = 1;
    OMAP3ISP_AF_PAXEL_VERTICAL_COUNT_MAX = 128;
    OMAP3ISP_AF_PAXEL_INCREMENT_MIN = 2;
    OMAP3ISP_AF_PAXEL_INCREMENT_MAX = 32;
    OMAP3ISP_AF_PAXEL_HEIGHT_MIN = 2;
    OMAP3ISP_AF_PAXEL_HEIGHT_MAX = 256;
    OMAP3ISP_AF_PAXEL_WIDTH_MIN = 16;
    OMAP3ISP_AF_PAXEL_WIDTH_MAX = 256;
    OMAP3ISP_AF_PAXEL_HZSTART_MIN = 1;
    OMAP3ISP_AF_PAXEL_HZSTART_MAX = 4095;
    OMAP3ISP_AF_PAXEL_SIZE = 48;
    OMAP3ISP_AF_COEF_MAX = 4095;
    OMAP3ISP_AF_MAX_BUF_SIZE = 221184;
    OMAP3ISP_HIST_MAX_BUF_SIZE = 4096;
    OMAP3ISP_HIST_MIN_REGIONS = 1;
    OMAP3ISP_HIST_BINS_64 = 1;
    OMAP3ISP_HIST_BINS_128 = 2;
    OMAP3ISP_HIST_BINS_256 = 3;
    OMAP3ISP_HIST_CFA_FOVEONX3 = 1;
}
