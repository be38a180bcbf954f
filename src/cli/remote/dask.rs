//! A remote Dask pool's endpoint made reachable here: its comm and HTTP
//! ports forwarded, its TLS certificate and key (the client's credentials)
//! read through the connection into our private directory, and a Dask
//! scheduler file naming the forwarded address, for `Client()` and
//! `Client(scheduler_file=...)` unchanged.

use std::path::Path;

use drover::protocol::{DaskEndpoint, DaskTls};

use super::connection::Connected;
use crate::cli::error::{CliError, Context};

pub async fn bring_near(
    conn: &Connected,
    mut d: DaskEndpoint,
    dir: &Path,
) -> Result<DaskEndpoint, CliError> {
    let remote_dask_file = d.scheduler_file.display().to_string();
    d.address = conn.forward(&d.address).await?;
    d.http = conn.forward(&d.http).await?;
    if let Some(tls) = d.tls.take() {
        d.tls = Some(DaskTls {
            cert: copy_secret(conn, &tls.cert, dir, "dask-cert.pem").await?,
            key: copy_secret(conn, &tls.key, dir, "dask-key.pem").await?,
        });
    }
    // Dask's own scheduler file, its address the forwarded one.
    let mut dask_file: serde_json::Value = conn.read_json(&remote_dask_file).await?;
    if let Some(obj) = dask_file.as_object_mut() {
        obj.insert("address".into(), d.address.clone().into());
    }
    let bytes = serde_json::to_vec(&dask_file).context("writing Dask's scheduler file")?;
    d.scheduler_file = write_private(dir, "dask-scheduler.json", &bytes)?;
    Ok(d)
}

/// A credential of the pool's, read through the connection into `dir`.
async fn copy_secret(
    conn: &Connected,
    remote: &Path,
    dir: &Path,
    name: &str,
) -> Result<std::path::PathBuf, CliError> {
    let bytes = conn.read(&remote.display().to_string()).await?;
    write_private(dir, name, &bytes)
}

/// A new file readable by us only, in our private directory.
fn write_private(dir: &Path, name: &str, bytes: &[u8]) -> Result<std::path::PathBuf, CliError> {
    use std::io::Write;
    let path = dir.join(name);
    let mut f = drover::private_fs::create_secret(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
