//! The test's runner token, kept in a Secret the LoadTest owns: runners present it when they
//! register, so only pods of this test can join it.

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use stampede_api::crd::LoadTest;

use super::context::Error;
use super::resources::{TOKEN_KEY, secret_name, token_secret};

fn random_token() -> String {
    stampede_api::id::random_hex(16)
}

/// The test's token: from its Secret, which is created on first sight. A Secret of that name
/// owned by an earlier LoadTest of the same name (not yet garbage collected) is replaced.
pub(super) async fn ensure_token(lt: &LoadTest, secrets: &Api<Secret>) -> Result<String, Error> {
    let name = secret_name(lt);
    let uid = lt.uid().unwrap_or_default();
    let secret = match secrets.get_opt(&name).await? {
        Some(s) if s.owner_references().iter().any(|o| o.uid == uid) => s,
        Some(_) => {
            secrets.delete(&name, &DeleteParams::background()).await?;
            return Err(Error::StaleSecret(name));
        }
        None => {
            let created = secrets
                .create(&PostParams::default(), &token_secret(lt, &random_token()))
                .await;
            match created {
                Ok(s) => s,
                // Another reconcile (or replica) won the race: use its token.
                Err(kube::Error::Api(s)) if s.is_already_exists() => secrets.get(&name).await?,
                Err(e) => return Err(e.into()),
            }
        }
    };
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(TOKEN_KEY))
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
        .ok_or(Error::BadSecret(name))
}
