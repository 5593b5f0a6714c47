//! The member's ed25519 signing key: a Secrets Manager secret on AWS, a file locally.

use dome_events::MemberKeypair;

/// Secrets Manager secret id (name or ARN) whose string value is the base64 ed25519 seed.
pub const SECRET_ENV: &str = "DOME_SIGNING_KEY_SECRET";
/// Local runs: a file holding the base64 ed25519 seed.
pub const FILE_ENV: &str = "DOME_SIGNING_KEY_FILE";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("set {SECRET_ENV} (a Secrets Manager secret id) or {FILE_ENV} (a key file)")]
    NotConfigured,
    #[error("{FILE_ENV}: reading {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("{SECRET_ENV}: reading secret {secret}: {message}")]
    Secret { secret: String, message: String },
    #[error("{source_name} does not hold a base64 ed25519 seed: {message}")]
    Malformed {
        source_name: String,
        message: String,
    },
}

fn parse(text: &str, source_name: String) -> Result<MemberKeypair, KeyError> {
    MemberKeypair::from_base64_seed(text.trim()).map_err(|e| KeyError::Malformed {
        source_name,
        message: e.to_string(),
    })
}

/// Reads the key from the file `path`.
pub fn from_file(path: &str) -> Result<MemberKeypair, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::File {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, format!("{FILE_ENV} {path}"))
}

/// Reads the key from the string value of the secret `secret_id`.
pub async fn from_secret(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> Result<MemberKeypair, KeyError> {
    let output = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| KeyError::Secret {
            secret: secret_id.to_owned(),
            message: aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string(),
        })?;
    let text = output.secret_string().ok_or_else(|| KeyError::Secret {
        secret: secret_id.to_owned(),
        message: "the secret has no string value".into(),
    })?;
    parse(text, format!("secret {secret_id}"))
}

/// The member key: from the secret named by `DOME_SIGNING_KEY_SECRET` if set (AWS), else
/// from the file named by `DOME_SIGNING_KEY_FILE` (local runs).
pub async fn load_signing_key() -> Result<MemberKeypair, KeyError> {
    if let Some(secret_id) = crate::env::optional(SECRET_ENV) {
        let config = dome_store_dynamodb::sdk_config_from_env().await;
        let client = aws_sdk_secretsmanager::Client::new(&config);
        return from_secret(&client, &secret_id).await;
    }
    if let Some(path) = crate::env::optional(FILE_ENV) {
        return from_file(&path);
    }
    Err(KeyError::NotConfigured)
}
