//! Where the passphrase comes from: `--passphrase-file`, then `KITH_PASSPHRASE`, then a
//! prompt when stdin is a terminal. Never echoed, never logged, zeroized after use.

use std::{io::IsTerminal, path::Path};

use zeroize::Zeroizing;

use crate::Failure;

pub fn obtain(file: Option<&Path>, confirm: bool) -> Result<Zeroizing<Vec<u8>>, Failure> {
    let passphrase = if let Some(file) = file {
        let bytes = Zeroizing::new(std::fs::read(file).map_err(|e| {
            Failure::Failed(anyhow::anyhow!(
                "cannot read the passphrase file {}: {e}",
                file.display()
            ))
        })?);
        Zeroizing::new(trim_newline(&bytes).to_vec())
    } else if let Some(value) = std::env::var_os("KITH_PASSPHRASE") {
        Zeroizing::new(value.into_encoded_bytes())
    } else if std::io::stdin().is_terminal() {
        prompt(confirm)?
    } else {
        return Err(Failure::Failed(anyhow::anyhow!(
            "no passphrase: set KITH_PASSPHRASE, pass --passphrase-file FILE, or run in a terminal"
        )));
    };
    if passphrase.is_empty() {
        return Err(Failure::Failed(anyhow::anyhow!("the passphrase is empty")));
    }
    Ok(passphrase)
}

fn prompt(confirm: bool) -> Result<Zeroizing<Vec<u8>>, Failure> {
    let read = |label: &str| {
        rpassword::prompt_password(label)
            .map(|s| Zeroizing::new(s.into_bytes()))
            .map_err(|e| Failure::Failed(anyhow::anyhow!("cannot read the passphrase: {e}")))
    };
    let first = read("Kith passphrase: ")?;
    if confirm {
        let second = read("Repeat the passphrase: ")?;
        if first != second {
            return Err(Failure::Failed(anyhow::anyhow!("the passphrases differ")));
        }
    }
    Ok(first)
}

/// A file written by `echo` ends in a newline that is not part of the passphrase.
fn trim_newline(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    bytes.strip_suffix(b"\r").unwrap_or(bytes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn trims_one_newline() {
        assert_eq!(super::trim_newline(b"secret\n"), b"secret");
        assert_eq!(super::trim_newline(b"secret\r\n"), b"secret");
        assert_eq!(super::trim_newline(b"secret\n\n"), b"secret\n");
        assert_eq!(super::trim_newline(b"secret"), b"secret");
    }
}
