//! Classic BPF, as `capture pcap filter` applies minimega's filters
//! (pcap-filter(7) expressions): a program as `tcpdump -ddd` prints one,
//! and an interpreter that runs it over a frame, so the same filter works
//! for a VM's packet socket and for a bridge's mirror tap. Pure.

use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BpfError {
    #[error("invalid filter program: {0}")]
    Program(String),
}

/// A checked program: every jump lands inside it and it ends in a return,
/// so running it always ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program(Vec<Insn>);

// Instruction classes and fields (linux/filter.h).
const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const ST: u16 = 0x02;
const STX: u16 = 0x03;
const ALU: u16 = 0x04;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const MISC: u16 = 0x07;
const W: u16 = 0x00;
const H: u16 = 0x08;
const B: u16 = 0x10;
const IMM: u16 = 0x00;
const ABS: u16 = 0x20;
const IND: u16 = 0x40;
const MEM: u16 = 0x60;
const LEN: u16 = 0x80;
const MSH: u16 = 0xa0;
const K: u16 = 0x00;
const A: u16 = 0x10;

impl Program {
    /// Reads `tcpdump -ddd` output: the count, then `code jt jf k` lines.
    pub fn parse(text: &str) -> Result<Program, BpfError> {
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        let count: usize = lines
            .next()
            .and_then(|l| l.parse().ok())
            .ok_or_else(|| BpfError::Program("no instruction count".into()))?;
        let mut insns = Vec::with_capacity(count);
        for l in lines {
            let f: Vec<u32> = l
                .split_whitespace()
                .map(|w| w.parse::<u32>())
                .collect::<Result<_, _>>()
                .map_err(|_| BpfError::Program(format!("bad line `{l}`")))?;
            let [code, jt, jf, k] = f[..] else {
                return Err(BpfError::Program(format!("bad line `{l}`")));
            };
            let (Ok(code), Ok(jt), Ok(jf)) =
                (u16::try_from(code), u8::try_from(jt), u8::try_from(jf))
            else {
                return Err(BpfError::Program(format!("bad line `{l}`")));
            };
            insns.push(Insn { code, jt, jf, k });
        }
        if insns.len() != count || count == 0 {
            return Err(BpfError::Program(format!(
                "{} instructions, {count} announced",
                insns.len()
            )));
        }
        Program::new(insns)
    }

    pub fn new(insns: Vec<Insn>) -> Result<Program, BpfError> {
        let n = insns.len();
        for (pc, i) in insns.iter().enumerate() {
            let class = i.code & 0x07;
            if class == JMP {
                let far = if i.code & 0xf0 == 0x00 {
                    pc + 1 + i.k as usize
                } else {
                    pc + 1 + i.jt.max(i.jf) as usize
                };
                if far >= n {
                    return Err(BpfError::Program(format!(
                        "jump out of the program at {pc}"
                    )));
                }
            }
            let scratch =
                matches!(class, ST | STX) || (class == LD || class == LDX) && i.code & 0xe0 == MEM;
            if scratch && i.k >= 16 {
                return Err(BpfError::Program(format!("scratch slot {} at {pc}", i.k)));
            }
        }
        if insns.last().map(|i| i.code & 0x07) != Some(RET) {
            return Err(BpfError::Program("does not end in a return".into()));
        }
        Ok(Program(insns))
    }

    /// How many bytes of the frame to keep: 0 drops it.
    pub fn run(&self, pkt: &[u8]) -> u32 {
        let (mut a, mut x) = (0u32, 0u32);
        let mut mem = [0u32; 16];
        let load = |off: u32, size: usize| -> Option<u32> {
            let off = off as usize;
            let b = pkt.get(off..off.checked_add(size)?)?;
            Some(b.iter().fold(0u32, |v, byte| v << 8 | *byte as u32))
        };
        let size = |code: u16| match code & 0x18 {
            W => 4,
            H => 2,
            B => 1,
            _ => 0,
        };
        let mut pc = 0usize;
        while let Some(i) = self.0.get(pc) {
            pc += 1;
            let src = if i.code & 0x08 == 0 { i.k } else { x };
            match i.code & 0x07 {
                LD => {
                    a = match i.code & 0xe0 {
                        IMM => i.k,
                        ABS => match load(i.k, size(i.code)) {
                            Some(v) => v,
                            None => return 0,
                        },
                        IND => match load(x.wrapping_add(i.k), size(i.code)) {
                            Some(v) => v,
                            None => return 0,
                        },
                        MEM => mem[i.k as usize],
                        LEN => pkt.len() as u32,
                        _ => return 0,
                    }
                }
                LDX => {
                    x = match i.code & 0xe0 {
                        IMM => i.k,
                        MEM => mem[i.k as usize],
                        LEN => pkt.len() as u32,
                        MSH => match load(i.k, 1) {
                            Some(v) => (v & 0xf) << 2,
                            None => return 0,
                        },
                        _ => return 0,
                    }
                }
                ST => mem[i.k as usize] = a,
                STX => mem[i.k as usize] = x,
                ALU => {
                    a = match i.code & 0xf0 {
                        0x00 => a.wrapping_add(src),
                        0x10 => a.wrapping_sub(src),
                        0x20 => a.wrapping_mul(src),
                        0x30 => match a.checked_div(src) {
                            Some(v) => v,
                            None => return 0,
                        },
                        0x40 => a | src,
                        0x50 => a & src,
                        0x60 => a.checked_shl(src).unwrap_or(0),
                        0x70 => a.checked_shr(src).unwrap_or(0),
                        0x80 => a.wrapping_neg(),
                        0x90 => match a.checked_rem(src) {
                            Some(v) => v,
                            None => return 0,
                        },
                        0xa0 => a ^ src,
                        _ => return 0,
                    }
                }
                JMP => {
                    let taken = match i.code & 0xf0 {
                        0x00 => {
                            pc += i.k as usize;
                            continue;
                        }
                        0x10 => a == src,
                        0x20 => a > src,
                        0x30 => a >= src,
                        0x40 => a & src != 0,
                        _ => return 0,
                    };
                    pc += if taken { i.jt } else { i.jf } as usize;
                }
                RET => {
                    return match i.code & 0x18 {
                        K => i.k,
                        A => a,
                        _ => 0,
                    }
                }
                MISC => {
                    if i.code & 0xf8 == 0 {
                        x = a;
                    } else {
                        a = x;
                    }
                }
                _ => return 0,
            }
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `tcpdump -ddd 'tcp port 80'` on an Ethernet capture (tcpdump 4.99).
    const TCP_80: &str = "20\n40 0 0 12\n21 0 6 34525\n48 0 0 20\n21 0 15 6\n40 0 0 54\n\
        21 12 0 80\n40 0 0 56\n21 10 11 80\n21 0 10 2048\n48 0 0 23\n21 0 8 6\n\
        40 0 0 20\n69 6 0 8191\n177 0 0 14\n72 0 0 14\n21 2 0 80\n72 0 0 16\n\
        21 0 1 80\n6 0 0 1600\n6 0 0 0\n";

    fn ipv4_tcp(sport: u16, dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12] = 0x08; // IPv4
        let mut ip = vec![
            0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        ip.extend(sport.to_be_bytes());
        ip.extend(dport.to_be_bytes());
        ip.extend([0u8; 16]);
        f.extend(ip);
        f
    }

    #[test]
    fn tcpdumps_program_keeps_what_it_should() {
        let p = Program::parse(TCP_80).unwrap();
        assert_eq!(p.run(&ipv4_tcp(1234, 80)), 1600);
        assert_eq!(p.run(&ipv4_tcp(80, 5555)), 1600);
        assert_eq!(p.run(&ipv4_tcp(1234, 443)), 0);
        let mut udp = ipv4_tcp(1234, 80);
        udp[23] = 17;
        assert_eq!(p.run(&udp), 0);
        assert_eq!(
            p.run(&[0u8; 3]),
            0,
            "a short frame is dropped, never read past"
        );
    }

    #[test]
    fn bad_programs_are_refused() {
        assert!(Program::parse("").is_err());
        assert!(Program::parse("2\n6 0 0 1\n").is_err(), "count");
        assert!(Program::parse("1\n21 5 5 0\n").is_err(), "jump out");
        assert!(Program::parse("1\n40 0 0 12\n").is_err(), "no return");
        assert!(
            Program::parse("2\n2 0 0 99\n6 0 0 1\n").is_err(),
            "scratch slot"
        );
        assert_eq!(Program::parse("1\n6 0 0 65535\n").unwrap().run(b"x"), 65535);
    }
}
