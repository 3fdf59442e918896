//! `kafka-configs.sh --entity-type users`: users' SCRAM credentials, as
//! Kafka's ConfigCommand handles them with `--bootstrap-server`
//! (`--add-config 'SCRAM-SHA-256=[iterations=8192,password=secret]'`,
//! `--delete-config SCRAM-SHA-256`, `--describe`). The password is salted
//! here; only the salted password is sent. Quotas are not served.

use std::process::ExitCode;

use crate::cli::output::print;
use crate::scram::{Mechanism, NewCredential};
use crate::{ClientError, ClusterClient};

/// Kafka's default when `iterations=` is left out.
const DEFAULT_ITERATIONS: i32 = 4096;

/// Kafka's `minIterations` of both mechanisms.
const MIN_ITERATIONS: i32 = 4096;

/// The error code of a user without credentials.
const RESOURCE_NOT_FOUND: i16 = 91;

fn mechanism(name: &str) -> Result<Mechanism, ClientError> {
    Mechanism::from_name(name).ok_or_else(|| {
        ClientError::Invalid(format!(
            "Only quota and SCRAM credential configs can be altered for 'users' (wharf serves no quotas). Unexpected config names: {name}"
        ))
    })
}

/// `[iterations=N,]password=P` (brackets already removed).
fn credential(user: &str, m: Mechanism, value: &str) -> Result<NewCredential, ClientError> {
    let invalid =
        || ClientError::Invalid(format!("Invalid credential property {}=<hidden>", m.name()));
    let (iterations, password) = match value.strip_prefix("iterations=") {
        Some(rest) => {
            let (n, password) = rest.split_once(",password=").ok_or_else(invalid)?;
            let n: i32 = n.parse().map_err(|_| invalid())?;
            (if n == -1 { DEFAULT_ITERATIONS } else { n }, password)
        }
        None => (
            DEFAULT_ITERATIONS,
            value.strip_prefix("password=").ok_or_else(invalid)?,
        ),
    };
    if iterations < MIN_ITERATIONS {
        return Err(ClientError::Invalid(format!(
            "Iterations {iterations} is less than the minimum {MIN_ITERATIONS} required for {}",
            m.name()
        )));
    }
    Ok(NewCredential {
        user: user.to_string(),
        mechanism: m,
        iterations,
        password: password.to_string(),
    })
}

/// `--alter` of user `user`: credentials to set and mechanisms to remove.
pub async fn alter(
    client: &mut ClusterClient,
    user: &str,
    set: &[(String, String)],
    delete: &[String],
) -> Result<ExitCode, ClientError> {
    let set = set
        .iter()
        .map(|(name, value)| credential(user, mechanism(name)?, value))
        .collect::<Result<Vec<_>, _>>()?;
    let remove = delete
        .iter()
        .map(|name| Ok((user.to_string(), mechanism(name)?)))
        .collect::<Result<Vec<_>, ClientError>>()?;
    // One request per mechanism: Kafka's controller refuses a user named
    // twice in one request (DUPLICATE_RESOURCE).
    for c in &set {
        for (_, result) in client
            .alter_user_scram_credentials(std::slice::from_ref(c), &[])
            .await?
        {
            result?;
        }
    }
    for r in &remove {
        for (_, result) in client
            .alter_user_scram_credentials(&[], std::slice::from_ref(r))
            .await?
        {
            result?;
        }
    }
    print(&format!("Completed updating config for user {user}.\n"))?;
    Ok(ExitCode::SUCCESS)
}

/// `--describe` of user `user`, or of every user with credentials.
pub async fn describe(
    client: &mut ClusterClient,
    user: Option<String>,
) -> Result<ExitCode, ClientError> {
    let users: Vec<String> = user.into_iter().collect();
    let mut text = String::new();
    for (user, result) in client.describe_user_scram_credentials(&users).await? {
        match result {
            Ok(credentials) => {
                let list: Vec<String> = credentials
                    .iter()
                    .map(|(m, iterations)| format!("{}=iterations={iterations}", m.name()))
                    .collect();
                text.push_str(&format!(
                    "SCRAM credential configs for user-principal '{user}' are {}\n",
                    list.join(", ")
                ));
            }
            Err(ClientError::Broker { code, .. }) if code == RESOURCE_NOT_FOUND => {}
            Err(e) => text.push_str(&format!(
                "Error retrieving SCRAM credential configs for user-principal '{user}': {e}\n"
            )),
        }
    }
    print(&text)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_kafkas_credential_syntax() {
        let c = credential("alice", Mechanism::Sha256, "iterations=8192,password=a,b=c").unwrap();
        assert_eq!((c.iterations, c.password.as_str()), (8192, "a,b=c"));
        let c = credential("alice", Mechanism::Sha512, "password=pw").unwrap();
        assert_eq!(c.iterations, DEFAULT_ITERATIONS);
        assert!(credential("alice", Mechanism::Sha256, "iterations=100,password=pw").is_err());
        assert!(credential("alice", Mechanism::Sha256, "iterations=x,password=pw").is_err());
        let hidden = credential("alice", Mechanism::Sha256, "secret-only").unwrap_err();
        assert!(!hidden.to_string().contains("secret-only"));
        assert!(mechanism("consumer_byte_rate").is_err());
    }
}
