//! `qos`: loss and delay with the netem qdisc, a rate with tbf, on the
//! tap (its egress is what the VM receives). The argv is pure; running it
//! is the edge, and a kernel without the qdisc is one clear error naming
//! it. As in minimega, a rate and loss/delay exclude each other.

use thiserror::Error;

pub use crate::vm::nic::Qos;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QosRule {
    /// Percent.
    Loss(String),
    Delay(String),
    /// e.g. `10mbit`.
    Rate(String),
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum QosError {
    #[error("invalid loss `{0}`: expected a percentage 0 <= loss < 100")]
    Loss(String),
    #[error("invalid delay `{0}`: expected a duration like 100ms, 1.5s or 250us")]
    Delay(String),
    #[error("invalid rate `{0}`: expected a whole number")]
    Rate(String),
    #[error("this kernel lacks the {qdisc} qdisc (module sch_{qdisc}), which qos {what} needs")]
    NoQdisc {
        qdisc: &'static str,
        what: &'static str,
    },
    #[error("tc: {0}")]
    Tc(String),
}

impl QosRule {
    pub fn loss(p: &str) -> Result<QosRule, QosError> {
        match p.parse::<f64>() {
            Ok(v) if (0.0..100.0).contains(&v) => Ok(QosRule::Loss(p.into())),
            _ => Err(QosError::Loss(p.into())),
        }
    }

    /// A Go duration (`100ms`, `1.5s`, `250us`); a bare number is ms.
    pub fn delay(d: &str) -> Result<QosRule, QosError> {
        let bad = || QosError::Delay(d.into());
        let split = d
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(d.len());
        let (num, unit) = d.split_at(split);
        let v: f64 = num.parse().map_err(|_| bad())?;
        if v < 0.0 {
            return Err(bad());
        }
        let unit = match unit {
            "" => "ms",
            "ns" | "us" | "µs" | "ms" | "s" => unit,
            _ => return Err(bad()),
        };
        let unit = if unit == "µs" { "us" } else { unit };
        Ok(QosRule::Delay(format!("{num}{unit}")))
    }

    pub fn rate(bw: &str, unit: &str) -> Result<QosRule, QosError> {
        bw.parse::<u64>().map_err(|_| QosError::Rate(bw.into()))?;
        Ok(QosRule::Rate(format!("{bw}{unit}")))
    }
}

impl Qos {
    /// The settings with `rule` added (replacing what it excludes).
    pub fn with(&self, rule: &QosRule) -> Qos {
        let mut q = self.clone();
        match rule {
            QosRule::Loss(v) => {
                q.rate.clear();
                q.loss = v.clone();
            }
            QosRule::Delay(v) => {
                q.rate.clear();
                q.delay = v.clone();
            }
            QosRule::Rate(v) => {
                q.loss.clear();
                q.delay.clear();
                q.rate = v.clone();
            }
        }
        q
    }

    /// `tc` arguments that install these settings on `dev`.
    pub fn argv(&self, dev: &str) -> Vec<String> {
        let mut a: Vec<String> = ["qdisc", "replace", "dev", dev, "root"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if !self.rate.is_empty() {
            a.extend(["tbf", "rate", &self.rate, "burst"].map(String::from));
            a.push(burst(&self.rate));
            a.extend(["latency", "20ms"].map(String::from));
        } else {
            a.push("netem".into());
            if !self.delay.is_empty() {
                a.extend(["delay".into(), self.delay.clone()]);
            }
            if !self.loss.is_empty() {
                a.extend(["loss".into(), format!("{}%", self.loss)]);
            }
        }
        a
    }

    /// What `vm info` shows for NIC `index`, minimega's words
    /// (`0: loss 25 delay 100ms`); empty without settings.
    pub fn describe(&self, index: usize) -> String {
        let mut parts = vec![format!("{index}:")];
        for (k, v) in [
            ("loss", &self.loss),
            ("delay", &self.delay),
            ("rate", &self.rate),
        ] {
            if !v.is_empty() {
                parts.push(format!("{k} {v}"));
            }
        }
        if parts.len() == 1 {
            return String::new();
        }
        parts.join(" ")
    }

    /// The qdisc these settings need.
    pub fn qdisc(&self) -> (&'static str, &'static str) {
        if self.rate.is_empty() {
            ("netem", "loss and delay")
        } else {
            ("tbf", "rate")
        }
    }
}

/// `tc` arguments that remove any settings from `dev`.
pub fn clear_argv(dev: &str) -> Vec<String> {
    ["qdisc", "del", "dev", dev, "root"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// The smallest bucket that holds one tick's worth at `rate` (rate / HZ,
/// HZ = 100 as minimega assumes), never below one full frame.
fn burst(rate: &str) -> String {
    let split = rate
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rate.len());
    let (n, unit) = rate.split_at(split);
    let bits: u64 = n.parse::<u64>().unwrap_or(0)
        * match unit {
            "gbit" => 1_000_000_000,
            "mbit" => 1_000_000,
            _ => 1_000,
        };
    let bytes = (bits / 8 / 100).max(1600);
    format!("{bytes}b")
}

/// Runs tc with `args`; an unknown qdisc is named.
pub async fn run(args: &[String], qos: &Qos) -> Result<(), QosError> {
    let out = tokio::process::Command::new("tc")
        .args(args)
        .output()
        .await
        .map_err(|e| QosError::Tc(format!("cannot run tc: {e} (install iproute2)")))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if err.contains("qdisc kind is unknown") || err.contains("Unknown qdisc") {
        let (qdisc, what) = qos.qdisc();
        return Err(QosError::NoQdisc { qdisc, what });
    }
    Err(QosError::Tc(
        err.lines().next().unwrap_or("failed").to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netem_argv_stacks_loss_and_delay() {
        let q = Qos::default()
            .with(&QosRule::loss("25").unwrap())
            .with(&QosRule::delay("100ms").unwrap());
        assert_eq!(
            q.argv("mega_tap0").join(" "),
            "qdisc replace dev mega_tap0 root netem delay 100ms loss 25%"
        );
        assert_eq!(q.describe(0), "0: loss 25 delay 100ms");
        assert_eq!(Qos::default().describe(1), "");
        assert_eq!(q.qdisc().0, "netem");
    }

    #[test]
    fn a_rate_replaces_netem_and_uses_tbf() {
        let q = Qos::default()
            .with(&QosRule::loss("5").unwrap())
            .with(&QosRule::rate("10", "mbit").unwrap());
        assert_eq!(
            q.argv("t").join(" "),
            "qdisc replace dev t root tbf rate 10mbit burst 12500b latency 20ms"
        );
        assert_eq!(q.describe(2), "2: rate 10mbit");
        let small = Qos::default().with(&QosRule::rate("8", "kbit").unwrap());
        assert!(small.argv("t").join(" ").contains("burst 1600b"));
        assert_eq!(clear_argv("t").join(" "), "qdisc del dev t root");
    }

    #[test]
    fn values_are_checked() {
        assert!(QosRule::loss("100").is_err() && QosRule::loss("-1").is_err());
        assert_eq!(QosRule::delay("100"), Ok(QosRule::Delay("100ms".into())));
        assert_eq!(QosRule::delay("1.5s"), Ok(QosRule::Delay("1.5s".into())));
        assert!(QosRule::delay("fast").is_err() && QosRule::delay("10h").is_err());
        assert!(QosRule::rate("1.5", "mbit").is_err());
        let e = QosError::NoQdisc {
            qdisc: "netem",
            what: "loss and delay",
        };
        assert_eq!(
            e.to_string(),
            "this kernel lacks the netem qdisc (module sch_netem), which qos loss and delay needs"
        );
    }
}
