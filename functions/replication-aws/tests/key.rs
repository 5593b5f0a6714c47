//! The member key from a Secrets Manager secret (on moto) and from a file.

use aws_sdk_secretsmanager::config::{BehaviorVersion, Region};
use dome_events::test_keys;
use dome_replication_aws::key::{from_file, from_secret, KeyError};
use dome_store_dynamodb::testing::{test_credentials, MotoServer, TEST_REGION};

#[tokio::test]
async fn the_key_is_read_from_a_secret_or_a_file_and_garbage_is_refused() -> anyhow::Result<()> {
    let moto = MotoServer::start().await?;
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(TEST_REGION))
        .credentials_provider(test_credentials())
        .endpoint_url(moto.endpoint())
        .http_client(dome_store_dynamodb::https_client())
        .build();
    let client = aws_sdk_secretsmanager::Client::from_conf(config);
    let expected = test_keys::member_keypair(1);
    client
        .create_secret()
        .name("dome/member-b/signing-key")
        .secret_string(format!("{}\n", expected.secret_seed_base64()))
        .send()
        .await?;
    client
        .create_secret()
        .name("dome/garbage")
        .secret_string("not a seed")
        .send()
        .await?;
    let key = from_secret(&client, "dome/member-b/signing-key").await?;
    assert_eq!(key.secret_seed_base64(), expected.secret_seed_base64());
    assert!(matches!(
        from_secret(&client, "dome/garbage").await,
        Err(KeyError::Malformed { .. })
    ));
    assert!(matches!(
        from_secret(&client, "dome/absent").await,
        Err(KeyError::Secret { .. })
    ));

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("signing.key");
    std::fs::write(&path, expected.secret_seed_base64())?;
    let path = path.to_string_lossy().into_owned();
    assert_eq!(
        from_file(&path)?.secret_seed_base64(),
        expected.secret_seed_base64()
    );
    assert!(matches!(
        from_file("/nonexistent/key"),
        Err(KeyError::File { .. })
    ));
    Ok(())
}
