//! Certificates for a first cluster: a cluster CA and host certificates signed by it, made
//! with rcgen. Every host certificate serves both ends of mutual TLS (server and client).

use napi_derive::napi;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use crate::error::{invalid, Error, Result};
use crate::types::Pem;

/// The CA's subject; host certificates name it as their issuer.
const CA_NAME: &str = "Zongzi cluster CA";

fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_NAME);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p
}

fn failed(e: rcgen::Error) -> Error {
    invalid(format!("certificate: {e}"))
}

/// createCertificateAuthority makes a new cluster CA: a self-signed certificate and its key.
#[napi(catch_unwind)]
pub fn create_certificate_authority() -> Result<Pem> {
    let key = KeyPair::generate().map_err(failed)?;
    let cert = ca_params().self_signed(&key).map_err(failed)?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// createHostCertificate signs a certificate for a host with the cluster CA. `names` are the
/// IP addresses and DNS names peers reach the host by; `validDays` (default: no expiry
/// before 4096) bounds it from now, and a negative value makes one that has expired.
#[napi(catch_unwind)]
pub fn create_host_certificate(
    ca: Pem,
    names: Vec<String>,
    valid_days: Option<i32>,
) -> Result<Pem> {
    if names.is_empty() || names.iter().any(|n| n.is_empty()) {
        return Err(invalid(
            "a host certificate needs at least one non-empty name",
        ));
    }
    let ca_key = KeyPair::from_pem(&ca.key).map_err(failed)?;
    let issuer = Issuer::new(ca_params(), ca_key);
    let key = KeyPair::generate().map_err(failed)?;
    let mut p = CertificateParams::new(names).map_err(failed)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "zongzi host");
    p.distinguished_name = dn;
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    if let Some(days) = valid_days {
        let today = days_since_epoch();
        let (from, to) = match days >= 0 {
            true => (today - 1, today + days as i64),
            false => (today + days as i64 - 1, today + days as i64),
        };
        let ((y0, m0, d0), (y1, m1, d1)) = (civil(from), civil(to));
        p.not_before = rcgen::date_time_ymd(y0, m0, d0);
        p.not_after = rcgen::date_time_ymd(y1, m1, d1);
    }
    let cert = p.signed_by(&key, &issuer).map_err(failed)?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

fn days_since_epoch() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    (secs / 86_400) as i64
}

/// civil is the (year, month, day) `days` after 1970-01-01, in the proleptic Gregorian
/// calendar.
fn civil(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let y = (yoe + era * 400 + i64::from(m <= 2)) as i32;
    (y, m, d)
}
