//! Decoding of one request read from the channel. Never panics on hostile bytes.

use zerocopy::FromBytes;

use crate::abi::*;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("request of {0} bytes is shorter than its header")]
    ShortHeader(usize),
    #[error("header says {header} bytes but {read} were read")]
    LengthMismatch { header: u32, read: usize },
    #[error("opcode {opcode} body is {got} bytes, need {need}")]
    ShortBody {
        opcode: u32,
        got: usize,
        need: usize,
    },
    #[error("declared payload of {declared} bytes but {got} present")]
    PayloadMismatch { declared: u32, got: usize },
}

/// A decoded request. Borrowed payloads point into the read buffer.
#[derive(Debug)]
pub enum Operation<'a> {
    CuseInit(cuse_init_in),
    Open(fuse_open_in),
    Read(fuse_read_in),
    Write(fuse_write_in, &'a [u8]),
    Release(fuse_release_in),
    Interrupt(fuse_interrupt_in),
    Ioctl(fuse_ioctl_in, &'a [u8]),
    Poll(fuse_poll_in),
    /// An opcode CUSE never sends or we do not know; answered with ENOSYS.
    Other(u32),
}

fn body<T: FromBytes + Copy>(opcode: u32, b: &[u8]) -> Result<(T, &[u8]), ParseError> {
    T::read_from_prefix(b).map_err(|_| ParseError::ShortBody {
        opcode,
        got: b.len(),
        need: core::mem::size_of::<T>(),
    })
}

/// Parses one whole request as read from `/dev/cuse`.
pub fn parse(buf: &[u8]) -> Result<(fuse_in_header, Operation<'_>), ParseError> {
    let (hdr, rest) =
        fuse_in_header::read_from_prefix(buf).map_err(|_| ParseError::ShortHeader(buf.len()))?;
    if hdr.len as usize != buf.len() {
        return Err(ParseError::LengthMismatch {
            header: hdr.len,
            read: buf.len(),
        });
    }
    let op = hdr.opcode;
    let operation = match Opcode::from_u32(op) {
        Some(Opcode::CuseInit) => Operation::CuseInit(body(op, rest)?.0),
        Some(Opcode::Open) => Operation::Open(body(op, rest)?.0),
        Some(Opcode::Read) => Operation::Read(body(op, rest)?.0),
        Some(Opcode::Write) => {
            let (w, data): (fuse_write_in, _) = body(op, rest)?;
            if w.size as usize != data.len() {
                return Err(ParseError::PayloadMismatch {
                    declared: w.size,
                    got: data.len(),
                });
            }
            Operation::Write(w, data)
        }
        Some(Opcode::Release) => Operation::Release(body(op, rest)?.0),
        Some(Opcode::Interrupt) => Operation::Interrupt(body(op, rest)?.0),
        Some(Opcode::Ioctl) => {
            let (i, data): (fuse_ioctl_in, _) = body(op, rest)?;
            if i.in_size as usize != data.len() {
                return Err(ParseError::PayloadMismatch {
                    declared: i.in_size,
                    got: data.len(),
                });
            }
            Operation::Ioctl(i, data)
        }
        Some(Opcode::Poll) => Operation::Poll(body(op, rest)?.0),
        Some(Opcode::Fsync) | Some(Opcode::Flush) | None => Operation::Other(op),
    };
    Ok((hdr, operation))
}

#[cfg(test)]
mod tests {
    use zerocopy::IntoBytes;

    use super::*;

    fn request(opcode: u32, unique: u64, body: &[u8]) -> Vec<u8> {
        let hdr = fuse_in_header {
            len: (40 + body.len()) as u32,
            opcode,
            unique,
            pid: 1234,
            ..Default::default()
        };
        let mut v = hdr.as_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn parses_cuse_init_golden_bytes() {
        // Exactly what a 6.1 kernel queues on open("/dev/cuse"): 7.38, unrestricted ioctl offered.
        let init = cuse_init_in {
            major: 7,
            minor: 38,
            unused: 0,
            flags: 1,
        };
        let buf = request(4096, 2, init.as_bytes());
        assert_eq!(buf.len(), 56);
        let (hdr, op) = parse(&buf).unwrap();
        assert_eq!(hdr.unique, 2);
        match op {
            Operation::CuseInit(i) => assert_eq!((i.major, i.minor, i.flags), (7, 38, 1)),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn ioctl_payload_must_match_in_size() {
        let io = fuse_ioctl_in {
            fh: 1,
            cmd: 0xc1007c00,
            in_size: 8,
            ..Default::default()
        };
        let mut b = io.as_bytes().to_vec();
        b.extend_from_slice(&[0; 4]);
        let buf = request(39, 4, &b);
        assert_eq!(
            parse(&buf).unwrap_err(),
            ParseError::PayloadMismatch {
                declared: 8,
                got: 4
            }
        );
    }

    #[test]
    fn truncated_and_lying_requests_are_errors() {
        assert_eq!(parse(&[0; 10]).unwrap_err(), ParseError::ShortHeader(10));
        let mut buf = request(15, 6, &[0; 40]);
        buf[0] = 200;
        assert!(matches!(
            parse(&buf),
            Err(ParseError::LengthMismatch { .. })
        ));
        let buf = request(15, 6, &[0; 12]);
        assert!(matches!(parse(&buf), Err(ParseError::ShortBody { .. })));
        let buf = request(999, 8, &[]);
        assert!(matches!(parse(&buf).unwrap().1, Operation::Other(999)));
    }
}
