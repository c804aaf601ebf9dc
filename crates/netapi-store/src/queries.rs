//! The SQL both backends share, as one macro that implements [`Store`] for a backend type.
//! Each backend provides `pool` (for reads), `writer()` (the pool for writes),
//! `begin_write()` (a transaction that holds the write lock before it reads) and the row
//! type; everything else is written here once.
//!
//! [`Store`]: netapi_core::store::Store

pub(crate) const USER_COLUMNS: &str =
    "id, email, name, role, password_hash, created_at, updated_at";
pub(crate) const KEY_COLUMNS: &str = "id, user_id, name, prefix, last_four, hash, scopes, created_at, last_used_at, expires_at, revoked_at, rate_limit, created_by_client, resource_id, resource_identifier, resource_scopes, metadata";
pub(crate) const CLIENT_COLUMNS: &str = "id, owner_id, name, redirect_uris, grant_types, scopes, auth_method, secret_hash, created_at, updated_at, rate_limit, trusted, resources, resource_scopes";
pub(crate) const REFRESH_COLUMNS: &str = "hash, family_id, client_id, user_id, scopes, issued_at, expires_at, family_expires_at, auth_time, rotated_at, revoked_at, successor_key, resource_id, resource_scopes";
pub(crate) const CODE_COLUMNS: &str = "hash, client_id, user_id, redirect_uri, scopes, code_challenge, nonce, auth_time, family_id, created_at, expires_at, used_at, redirect_uri_in_request, resource_id, resource_scopes";
pub(crate) const RESOURCE_COLUMNS: &str = "id, identifier, name, scopes, self_service_scopes, allow_api_keys, access_token_ttl, created_at, updated_at, deleted_at";
pub(crate) const CONSENT_COLUMNS: &str = "user_id, client_id, scopes, granted_at, resource_scopes";
pub(crate) const EVENT_COLUMNS: &str = "id, user_id, kind, ip, detail, created_at";

macro_rules! impl_store {
    ($store:ty, $row:ty) => {
        use netapi_core::model::{
            ApiKey, AuditEvent, AuthorizationCode, Consent, OAuthClient, RefreshToken,
            Resource, ResourceGrant, ResourceRef, RotateOutcome, Session, SigningKey, User,
        };
        use netapi_core::scope::Scopes;
        use netapi_core::secret::SecretHash;
        use netapi_core::store::{
            ClientChanges, Invalidation, ResourceChanges, ResourceDeletion, Store, StoreResult,
            UserChanges,
        };
        use netapi_core::Timestamp;
        use netapi_core::usage::{UsageCount, UsageOutcome};
        use sqlx::Row;
        use $crate::codec;
        use $crate::map_err;
        use $crate::queries::*;

        fn user_from(row: &$row) -> StoreResult<User> {
            Ok(User {
                id: row.try_get("id").map_err(map_err)?,
                email: row.try_get("email").map_err(map_err)?,
                name: row.try_get("name").map_err(map_err)?,
                role: codec::role(row.try_get("role").map_err(map_err)?)?,
                password_hash: row.try_get("password_hash").map_err(map_err)?,
                created_at: row.try_get("created_at").map_err(map_err)?,
                updated_at: row.try_get("updated_at").map_err(map_err)?,
            })
        }

        fn key_from(row: &$row) -> StoreResult<ApiKey> {
            Ok(ApiKey {
                id: row.try_get("id").map_err(map_err)?,
                user_id: row.try_get("user_id").map_err(map_err)?,
                name: row.try_get("name").map_err(map_err)?,
                prefix: row.try_get("prefix").map_err(map_err)?,
                last_four: row.try_get("last_four").map_err(map_err)?,
                hash: codec::hash(row.try_get("hash").map_err(map_err)?)?,
                scopes: Scopes::from_bits(row.try_get("scopes").map_err(map_err)?),
                created_at: row.try_get("created_at").map_err(map_err)?,
                last_used_at: row.try_get("last_used_at").map_err(map_err)?,
                expires_at: row.try_get("expires_at").map_err(map_err)?,
                revoked_at: row.try_get("revoked_at").map_err(map_err)?,
                rate_limit: rate_limit(row.try_get("rate_limit").map_err(map_err)?),
                created_by_client: row.try_get("created_by_client").map_err(map_err)?,
                resource: match (
                    row.try_get::<Option<String>, _>("resource_id").map_err(map_err)?,
                    row.try_get::<Option<String>, _>("resource_identifier").map_err(map_err)?,
                ) {
                    (Some(id), Some(identifier)) => Some(ResourceRef { id, identifier }),
                    _ => None,
                },
                resource_scopes: codec::split_names(row.try_get("resource_scopes").map_err(map_err)?),
                metadata: row.try_get("metadata").map_err(map_err)?,
            })
        }

        fn resource_from(row: &$row) -> StoreResult<Resource> {
            Ok(Resource {
                id: row.try_get("id").map_err(map_err)?,
                identifier: row.try_get("identifier").map_err(map_err)?,
                name: row.try_get("name").map_err(map_err)?,
                scopes: codec::split_resource_scopes(row.try_get("scopes").map_err(map_err)?),
                self_service_scopes: codec::split_names(
                    row.try_get("self_service_scopes").map_err(map_err)?,
                ),
                allow_api_keys: row.try_get("allow_api_keys").map_err(map_err)?,
                access_token_ttl: rate_limit(row.try_get("access_token_ttl").map_err(map_err)?),
                created_at: row.try_get("created_at").map_err(map_err)?,
                updated_at: row.try_get("updated_at").map_err(map_err)?,
                deleted_at: row.try_get("deleted_at").map_err(map_err)?,
            })
        }

        fn grant_from(row: &$row) -> StoreResult<ResourceGrant> {
            Ok(ResourceGrant {
                user_id: row.try_get("user_id").map_err(map_err)?,
                resource_id: row.try_get("resource_id").map_err(map_err)?,
                scopes: codec::split_names(row.try_get("scopes").map_err(map_err)?),
                updated_at: row.try_get("updated_at").map_err(map_err)?,
            })
        }

        /// The distinct `family_id`s of revoked refresh-token rows.
        fn family_ids(rows: &[$row]) -> StoreResult<Vec<String>> {
            let mut families: Vec<String> = rows
                .iter()
                .map(|r| r.try_get("family_id").map_err(map_err))
                .collect::<StoreResult<_>>()?;
            families.sort();
            families.dedup();
            Ok(families)
        }

        fn rate_limit(stored: Option<i64>) -> Option<u32> {
            stored.and_then(|n| u32::try_from(n).ok())
        }

        fn client_from(row: &$row) -> StoreResult<OAuthClient> {
            let secret_hash: Option<Vec<u8>> = row.try_get("secret_hash").map_err(map_err)?;
            Ok(OAuthClient {
                id: row.try_get("id").map_err(map_err)?,
                owner_id: row.try_get("owner_id").map_err(map_err)?,
                name: row.try_get("name").map_err(map_err)?,
                redirect_uris: codec::split_uris(row.try_get("redirect_uris").map_err(map_err)?),
                grant_types: codec::split_grants(row.try_get("grant_types").map_err(map_err)?)?,
                scopes: Scopes::from_bits(row.try_get("scopes").map_err(map_err)?),
                auth_method: codec::auth_method(row.try_get("auth_method").map_err(map_err)?)?,
                secret_hash: secret_hash.as_deref().map(codec::hash).transpose()?,
                created_at: row.try_get("created_at").map_err(map_err)?,
                updated_at: row.try_get("updated_at").map_err(map_err)?,
                rate_limit: rate_limit(row.try_get("rate_limit").map_err(map_err)?),
                trusted: row.try_get("trusted").map_err(map_err)?,
                resources: codec::split_names(row.try_get("resources").map_err(map_err)?),
                resource_scopes: codec::split_names(row.try_get("resource_scopes").map_err(map_err)?),
            })
        }

        fn refresh_from(row: &$row) -> StoreResult<RefreshToken> {
            Ok(RefreshToken {
                hash: codec::hash(row.try_get("hash").map_err(map_err)?)?,
                family_id: row.try_get("family_id").map_err(map_err)?,
                client_id: row.try_get("client_id").map_err(map_err)?,
                user_id: row.try_get("user_id").map_err(map_err)?,
                scopes: Scopes::from_bits(row.try_get("scopes").map_err(map_err)?),
                issued_at: row.try_get("issued_at").map_err(map_err)?,
                expires_at: row.try_get("expires_at").map_err(map_err)?,
                family_expires_at: row.try_get("family_expires_at").map_err(map_err)?,
                auth_time: row.try_get("auth_time").map_err(map_err)?,
                rotated_at: row.try_get("rotated_at").map_err(map_err)?,
                revoked_at: row.try_get("revoked_at").map_err(map_err)?,
                successor_key: row
                    .try_get::<Option<Vec<u8>>, _>("successor_key")
                    .map_err(map_err)?
                    .as_deref()
                    .and_then(netapi_core::secret::DerivationKey::from_slice),
                resource_id: row.try_get("resource_id").map_err(map_err)?,
                resource_scopes: codec::split_names(row.try_get("resource_scopes").map_err(map_err)?),
            })
        }

        fn code_from(row: &$row) -> StoreResult<AuthorizationCode> {
            Ok(AuthorizationCode {
                hash: codec::hash(row.try_get("hash").map_err(map_err)?)?,
                client_id: row.try_get("client_id").map_err(map_err)?,
                user_id: row.try_get("user_id").map_err(map_err)?,
                redirect_uri: row.try_get("redirect_uri").map_err(map_err)?,
                redirect_uri_in_request: row
                    .try_get("redirect_uri_in_request")
                    .map_err(map_err)?,
                scopes: Scopes::from_bits(row.try_get("scopes").map_err(map_err)?),
                code_challenge: row.try_get("code_challenge").map_err(map_err)?,
                nonce: row.try_get("nonce").map_err(map_err)?,
                auth_time: row.try_get("auth_time").map_err(map_err)?,
                family_id: row.try_get("family_id").map_err(map_err)?,
                created_at: row.try_get("created_at").map_err(map_err)?,
                expires_at: row.try_get("expires_at").map_err(map_err)?,
                used_at: row.try_get("used_at").map_err(map_err)?,
                resource_id: row.try_get("resource_id").map_err(map_err)?,
                resource_scopes: codec::split_names(row.try_get("resource_scopes").map_err(map_err)?),
            })
        }

        fn event_from(row: &$row) -> StoreResult<AuditEvent> {
            Ok(AuditEvent {
                id: row.try_get("id").map_err(map_err)?,
                user_id: row.try_get("user_id").map_err(map_err)?,
                kind: row.try_get("kind").map_err(map_err)?,
                ip: row.try_get("ip").map_err(map_err)?,
                detail: row.try_get("detail").map_err(map_err)?,
                created_at: row.try_get("created_at").map_err(map_err)?,
            })
        }

        fn consent_from(row: &$row) -> StoreResult<Consent> {
            Ok(Consent {
                user_id: row.try_get("user_id").map_err(map_err)?,
                client_id: row.try_get("client_id").map_err(map_err)?,
                scopes: Scopes::from_bits(row.try_get("scopes").map_err(map_err)?),
                granted_at: row.try_get("granted_at").map_err(map_err)?,
                resource_scopes: codec::split_pairs(row.try_get("resource_scopes").map_err(map_err)?),
            })
        }

        fn signing_key_from(row: &$row) -> StoreResult<SigningKey> {
            Ok(SigningKey {
                kid: row.try_get("kid").map_err(map_err)?,
                alg: codec::alg(row.try_get("alg").map_err(map_err)?)?,
                private_key: row.try_get("private_key").map_err(map_err)?,
                created_at: row.try_get("created_at").map_err(map_err)?,
                active_from: row.try_get("active_from").map_err(map_err)?,
                retire_at: row.try_get("retire_at").map_err(map_err)?,
            })
        }

        fn all<T>(rows: &[$row], decode: fn(&$row) -> StoreResult<T>) -> StoreResult<Vec<T>> {
            rows.iter().map(decode).collect()
        }

        fn limit(n: u32) -> i64 {
            i64::from(n)
        }

        #[async_trait::async_trait]
        impl Store for $store {
            fn pool_usage(&self) -> (u32, u32) {
                (self.pool.size(), u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX))
            }

            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await.map_err(map_err)?;
                Ok(())
            }

            async fn ping_write(&self) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                // A statement that writes nothing still needs write access (SQLite opens a
                // write transaction for it, PostgreSQL refuses it on a read-only server).
                sqlx::query("UPDATE signing_keys SET kid = kid WHERE 1 = 0")
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                tx.rollback().await.map_err(map_err)
            }

            async fn create_user(&self, user: &User, first_key: Option<&ApiKey>, event: &AuditEvent) -> StoreResult<()> {
                crate::retry_contention(|| self.create_user_once(user, first_key, event)).await
            }

            async fn get_user(&self, id: &str) -> StoreResult<Option<User>> {
                let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?;
                row.as_ref().map(user_from).transpose()
            }

            async fn get_user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
                let row =
                    sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1"))
                        .bind(email)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(map_err)?;
                row.as_ref().map(user_from).transpose()
            }

            async fn list_users(&self, after: Option<&str>, n: u32) -> StoreResult<Vec<User>> {
                let rows = sqlx::query(&format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE id > $1 ORDER BY id LIMIT $2"
                ))
                .bind(after.unwrap_or(""))
                .bind(limit(n))
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                all(&rows, user_from)
            }

            async fn update_user(
                &self,
                id: &str,
                changes: &UserChanges,
                at: Timestamp,
            ) -> StoreResult<Option<User>> {
                // A column left out is kept as it is at the moment of the write (PostgreSQL
                // re-reads a row a concurrent transaction changed), never as it was read.
                let row = sqlx::query(&format!(
                    "UPDATE users SET name = COALESCE($2, name), email = COALESCE($3, email), \
                     password_hash = COALESCE($4, password_hash), role = COALESCE($5, role), \
                     updated_at = $6 WHERE id = $1 RETURNING {USER_COLUMNS}"
                ))
                .bind(id)
                .bind(changes.name.as_deref())
                .bind(changes.email.as_deref())
                .bind(changes.password_hash.as_deref())
                .bind(changes.role.map(|r| r.as_str()))
                .bind(at)
                .fetch_optional(self.writer())
                .await
                .map_err(map_err)?;
                row.as_ref().map(user_from).transpose()
            }

            async fn delete_user(&self, id: &str) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM users WHERE id = $1")
                    .bind(id)
                    .execute(self.writer())
                    .await
                    .map_err(map_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn insert_api_key(&self, key: &ApiKey) -> StoreResult<()> {
                insert_key(self.writer(), key).await
            }

            async fn get_api_key(&self, id: &str) -> StoreResult<Option<ApiKey>> {
                let row = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?;
                row.as_ref().map(key_from).transpose()
            }

            async fn find_api_key(&self, hash: &SecretHash) -> StoreResult<Option<ApiKey>> {
                let row =
                    sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE hash = $1"))
                        .bind(hash.0.as_slice())
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(map_err)?;
                row.as_ref().map(key_from).transpose()
            }

            async fn list_api_keys(
                &self,
                user_id: &str,
                after: Option<&str>,
                n: u32,
            ) -> StoreResult<Vec<ApiKey>> {
                let rows = sqlx::query(&format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys WHERE user_id = $1 AND id > $2 \
                     AND revoked_at IS NULL ORDER BY id LIMIT $3"
                ))
                .bind(user_id)
                .bind(after.unwrap_or(""))
                .bind(limit(n))
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                all(&rows, key_from)
            }

            async fn revoke_api_key(&self, id: &str, at: Timestamp) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                )
                .bind(id)
                .bind(at)
                .execute(self.writer())
                .await
                .map_err(map_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn rotate_api_key(&self, old_id: &str, old_expires_at: Timestamp, new_key: &ApiKey) -> StoreResult<bool> {
                crate::retry_contention(|| self.rotate_api_key_once(old_id, old_expires_at, new_key)).await
            }

            async fn revoke_api_keys_of_client(
                &self,
                client_id: &str,
                user_id: Option<&str>,
                at: Timestamp,
            ) -> StoreResult<Vec<SecretHash>> {
                let query = match user_id {
                    Some(user_id) => sqlx::query(
                        "UPDATE api_keys SET revoked_at = $2 WHERE created_by_client = $1 \
                         AND user_id = $3 AND revoked_at IS NULL RETURNING hash",
                    )
                    .bind(client_id)
                    .bind(at)
                    .bind(user_id),
                    None => sqlx::query(
                        "UPDATE api_keys SET revoked_at = $2 WHERE created_by_client = $1 \
                         AND revoked_at IS NULL RETURNING hash",
                    )
                    .bind(client_id)
                    .bind(at),
                };
                let rows = query.fetch_all(self.writer()).await.map_err(map_err)?;
                rows.iter()
                    .map(|r| codec::hash(r.try_get("hash").map_err(map_err)?))
                    .collect()
            }

            async fn record_api_key_use(&self, uses: &[(String, Timestamp)]) -> StoreResult<()> {
                crate::retry_contention(|| self.record_api_key_use_once(uses)).await
            }

            async fn add_api_key_usage(&self, counts: &[UsageCount]) -> StoreResult<()> {
                crate::retry_contention(|| self.add_api_key_usage_once(counts)).await
            }

            async fn api_key_usage(
                &self,
                key_id: &str,
                from: Timestamp,
                to: Timestamp,
            ) -> StoreResult<Vec<UsageCount>> {
                let rows = sqlx::query(
                    "SELECT hour, outcome, count FROM api_key_usage \
                     WHERE key_id = $1 AND hour >= $2 AND hour < $3 ORDER BY hour, outcome",
                )
                .bind(key_id)
                .bind(from)
                .bind(to)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                rows.iter()
                    .map(|row| {
                        let outcome: String = row.try_get("outcome").map_err(map_err)?;
                        let count: i64 = row.try_get("count").map_err(map_err)?;
                        Ok(UsageCount {
                            key_id: key_id.to_owned(),
                            hour: row.try_get("hour").map_err(map_err)?,
                            outcome: UsageOutcome::parse(&outcome).ok_or_else(|| {
                                StoreError::Other(format!("unknown usage outcome '{outcome}'"))
                            })?,
                            count: u64::try_from(count).unwrap_or(0),
                        })
                    })
                    .collect()
            }

            async fn delete_api_key_usage_before(&self, hour: Timestamp) -> StoreResult<u64> {
                let done = sqlx::query("DELETE FROM api_key_usage WHERE hour < $1")
                    .bind(hour)
                    .execute(self.writer())
                    .await
                    .map_err(map_err)?;
                Ok(done.rows_affected())
            }

            async fn insert_audit_event(&self, event: &AuditEvent) -> StoreResult<()> {
                insert_event(self.writer(), event).await
            }

            async fn list_audit_events(
                &self,
                user_id: Option<&str>,
                before: Option<&str>,
                n: u32,
            ) -> StoreResult<Vec<AuditEvent>> {
                let before = before.unwrap_or("~");
                let rows = match user_id {
                    Some(user_id) => sqlx::query(&format!(
                        "SELECT {EVENT_COLUMNS} FROM audit_events WHERE user_id = $1 AND id < $2 \
                         ORDER BY id DESC LIMIT $3"
                    ))
                    .bind(user_id)
                    .bind(before)
                    .bind(limit(n))
                    .fetch_all(&self.pool)
                    .await,
                    None => sqlx::query(&format!(
                        "SELECT {EVENT_COLUMNS} FROM audit_events WHERE id < $1 \
                         ORDER BY id DESC LIMIT $2"
                    ))
                    .bind(before)
                    .bind(limit(n))
                    .fetch_all(&self.pool)
                    .await,
                }
                .map_err(map_err)?;
                all(&rows, event_from)
            }

            async fn insert_client(&self, client: &OAuthClient) -> StoreResult<()> {
                sqlx::query(&format!(
                    "INSERT INTO oauth_clients ({CLIENT_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
                ))
                .bind(&client.id)
                .bind(&client.owner_id)
                .bind(&client.name)
                .bind(codec::join_uris(&client.redirect_uris))
                .bind(codec::join_grants(&client.grant_types))
                .bind(client.scopes.bits())
                .bind(client.auth_method.as_str())
                .bind(client.secret_hash.map(|h| h.0.to_vec()))
                .bind(client.created_at)
                .bind(client.updated_at)
                .bind(client.rate_limit.map(i64::from))
                .bind(client.trusted)
                .bind(codec::join_names(&client.resources))
                .bind(codec::join_names(&client.resource_scopes))
                .execute(self.writer())
                .await
                .map_err(map_err)?;
                Ok(())
            }

            async fn set_client_trusted(&self, id: &str, trusted: bool) -> StoreResult<bool> {
                let done = sqlx::query("UPDATE oauth_clients SET trusted = $2 WHERE id = $1")
                    .bind(id)
                    .bind(trusted)
                    .execute(self.writer())
                    .await
                    .map_err(map_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn get_client(&self, id: &str) -> StoreResult<Option<OAuthClient>> {
                let row = sqlx::query(&format!(
                    "SELECT {CLIENT_COLUMNS} FROM oauth_clients WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
                row.as_ref().map(client_from).transpose()
            }

            async fn list_clients(
                &self,
                owner_id: Option<&str>,
                after: Option<&str>,
                n: u32,
            ) -> StoreResult<Vec<OAuthClient>> {
                let after = after.unwrap_or("");
                let rows = match owner_id {
                    Some(owner) => sqlx::query(&format!(
                        "SELECT {CLIENT_COLUMNS} FROM oauth_clients WHERE owner_id = $1 \
                         AND id > $2 ORDER BY id LIMIT $3"
                    ))
                    .bind(owner)
                    .bind(after)
                    .bind(limit(n))
                    .fetch_all(&self.pool)
                    .await,
                    None => sqlx::query(&format!(
                        "SELECT {CLIENT_COLUMNS} FROM oauth_clients WHERE id > $1 \
                         ORDER BY id LIMIT $2"
                    ))
                    .bind(after)
                    .bind(limit(n))
                    .fetch_all(&self.pool)
                    .await,
                }
                .map_err(map_err)?;
                all(&rows, client_from)
            }

            async fn update_client(
                &self,
                id: &str,
                changes: &ClientChanges,
                at: Timestamp,
            ) -> StoreResult<Option<OAuthClient>> {
                // As for users: only the given columns; never the secret.
                let row = sqlx::query(&format!(
                    "UPDATE oauth_clients SET name = COALESCE($2, name), \
                     redirect_uris = COALESCE($3, redirect_uris), \
                     grant_types = COALESCE($4, grant_types), scopes = COALESCE($5, scopes), \
                     rate_limit = CASE WHEN $6 THEN $7 ELSE rate_limit END, updated_at = $8, \
                     resources = COALESCE($9, resources), \
                     resource_scopes = COALESCE($10, resource_scopes) \
                     WHERE id = $1 RETURNING {CLIENT_COLUMNS}"
                ))
                .bind(id)
                .bind(changes.name.as_deref())
                .bind(changes.redirect_uris.as_deref().map(codec::join_uris))
                .bind(changes.grant_types.as_deref().map(codec::join_grants))
                .bind(changes.scopes.map(Scopes::bits))
                .bind(changes.rate_limit.is_some())
                .bind(changes.rate_limit.flatten().map(i64::from))
                .bind(at)
                .bind(changes.resources.as_deref().map(codec::join_names))
                .bind(changes.resource_scopes.as_deref().map(codec::join_names))
                .fetch_optional(self.writer())
                .await
                .map_err(map_err)?;
                row.as_ref().map(client_from).transpose()
            }

            async fn set_client_secret(
                &self,
                id: &str,
                hash: &SecretHash,
                at: Timestamp,
            ) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE oauth_clients SET secret_hash = $2, updated_at = $3 WHERE id = $1",
                )
                .bind(id)
                .bind(hash.0.as_slice())
                .bind(at)
                .execute(self.writer())
                .await
                .map_err(map_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_client(&self, id: &str) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM oauth_clients WHERE id = $1")
                    .bind(id)
                    .execute(self.writer())
                    .await
                    .map_err(map_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn insert_refresh_token(&self, token: &RefreshToken) -> StoreResult<()> {
                insert_refresh(self.writer(), token).await
            }

            async fn get_refresh_token(
                &self,
                hash: &SecretHash,
            ) -> StoreResult<Option<RefreshToken>> {
                let row = sqlx::query(&format!(
                    "SELECT {REFRESH_COLUMNS} FROM refresh_tokens WHERE hash = $1"
                ))
                .bind(hash.0.as_slice())
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
                row.as_ref().map(refresh_from).transpose()
            }

            async fn rotate_refresh_token(&self, old: &SecretHash, now: Timestamp, grace: i64, successor: &RefreshToken) -> StoreResult<RotateOutcome> {
                crate::retry_contention(|| self.rotate_refresh_token_once(old, now, grace, successor)).await
            }

            async fn revoke_refresh_family(
                &self,
                family_id: &str,
                at: Timestamp,
            ) -> StoreResult<u64> {
                revoke_family(self.writer(), family_id, at).await
            }

            async fn revoke_refresh_for_client(
                &self,
                user_id: &str,
                client_id: &str,
                at: Timestamp,
            ) -> StoreResult<Vec<String>> {
                let rows = sqlx::query(
                    "UPDATE refresh_tokens SET revoked_at = $3 WHERE user_id = $1 \
                     AND client_id = $2 AND revoked_at IS NULL RETURNING family_id",
                )
                .bind(user_id)
                .bind(client_id)
                .bind(at)
                .fetch_all(self.writer())
                .await
                .map_err(map_err)?;
                family_ids(&rows)
            }

            async fn revoke_refresh_for_user(
                &self,
                user_id: &str,
                at: Timestamp,
            ) -> StoreResult<Vec<String>> {
                let rows = sqlx::query(
                    "UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 \
                     AND revoked_at IS NULL RETURNING family_id",
                )
                .bind(user_id)
                .bind(at)
                .fetch_all(self.writer())
                .await
                .map_err(map_err)?;
                family_ids(&rows)
            }

            async fn insert_authorization_code(
                &self,
                code: &AuthorizationCode,
            ) -> StoreResult<()> {
                sqlx::query(&format!(
                    "INSERT INTO authorization_codes ({CODE_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
                ))
                .bind(code.hash.0.as_slice())
                .bind(&code.client_id)
                .bind(&code.user_id)
                .bind(&code.redirect_uri)
                .bind(code.scopes.bits())
                .bind(&code.code_challenge)
                .bind(&code.nonce)
                .bind(code.auth_time)
                .bind(&code.family_id)
                .bind(code.created_at)
                .bind(code.expires_at)
                .bind(code.used_at)
                .bind(code.redirect_uri_in_request)
                .bind(&code.resource_id)
                .bind(codec::join_names(&code.resource_scopes))
                .execute(self.writer())
                .await
                .map_err(map_err)?;
                Ok(())
            }

            async fn consume_authorization_code(
                &self,
                hash: &SecretHash,
                now: Timestamp,
            ) -> StoreResult<Option<AuthorizationCode>> {
                let first = sqlx::query(&format!(
                    "UPDATE authorization_codes SET used_at = $2 WHERE hash = $1 \
                     AND used_at IS NULL RETURNING {CODE_COLUMNS}"
                ))
                .bind(hash.0.as_slice())
                .bind(now)
                .fetch_optional(self.writer())
                .await
                .map_err(map_err)?;
                if let Some(row) = first {
                    let mut code = code_from(&row)?;
                    code.used_at = None;
                    return Ok(Some(code));
                }
                let again = sqlx::query(&format!(
                    "SELECT {CODE_COLUMNS} FROM authorization_codes WHERE hash = $1"
                ))
                .bind(hash.0.as_slice())
                .fetch_optional(self.writer())
                .await
                .map_err(map_err)?;
                again.as_ref().map(code_from).transpose()
            }

            async fn upsert_consent(&self, consent: &Consent) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO consents (user_id, client_id, scopes, granted_at, resource_scopes) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, client_id) \
                     DO UPDATE SET scopes = excluded.scopes, granted_at = excluded.granted_at, \
                     resource_scopes = excluded.resource_scopes",
                )
                .bind(&consent.user_id)
                .bind(&consent.client_id)
                .bind(consent.scopes.bits())
                .bind(consent.granted_at)
                .bind(codec::join_pairs(&consent.resource_scopes))
                .execute(self.writer())
                .await
                .map_err(map_err)?;
                Ok(())
            }

            async fn get_consent(
                &self,
                user_id: &str,
                client_id: &str,
            ) -> StoreResult<Option<Consent>> {
                let row = sqlx::query(&format!(
                    "SELECT {CONSENT_COLUMNS} FROM consents \
                     WHERE user_id = $1 AND client_id = $2"
                ))
                .bind(user_id)
                .bind(client_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
                row.as_ref().map(consent_from).transpose()
            }

            async fn list_consents(&self, user_id: &str) -> StoreResult<Vec<Consent>> {
                let rows = sqlx::query(&format!(
                    "SELECT {CONSENT_COLUMNS} FROM consents \
                     WHERE user_id = $1 ORDER BY client_id"
                ))
                .bind(user_id)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                all(&rows, consent_from)
            }

            async fn delete_consent(&self, user_id: &str, client_id: &str) -> StoreResult<bool> {
                let done =
                    sqlx::query("DELETE FROM consents WHERE user_id = $1 AND client_id = $2")
                        .bind(user_id)
                        .bind(client_id)
                        .execute(self.writer())
                        .await
                        .map_err(map_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn insert_session(&self, session: &Session) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO sessions (hash, user_id, auth_time, csrf_token, expires_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(session.hash.0.as_slice())
                .bind(&session.user_id)
                .bind(session.auth_time)
                .bind(&session.csrf_token)
                .bind(session.expires_at)
                .execute(self.writer())
                .await
                .map_err(map_err)?;
                Ok(())
            }

            async fn get_session(&self, hash: &SecretHash) -> StoreResult<Option<Session>> {
                let row = sqlx::query(
                    "SELECT hash, user_id, auth_time, csrf_token, expires_at FROM sessions \
                     WHERE hash = $1",
                )
                .bind(hash.0.as_slice())
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
                row.map(|row| {
                    Ok(Session {
                        hash: codec::hash(row.try_get("hash").map_err(map_err)?)?,
                        user_id: row.try_get("user_id").map_err(map_err)?,
                        auth_time: row.try_get("auth_time").map_err(map_err)?,
                        csrf_token: row.try_get("csrf_token").map_err(map_err)?,
                        expires_at: row.try_get("expires_at").map_err(map_err)?,
                    })
                })
                .transpose()
            }

            async fn delete_session(&self, hash: &SecretHash) -> StoreResult<()> {
                sqlx::query("DELETE FROM sessions WHERE hash = $1")
                    .bind(hash.0.as_slice())
                    .execute(self.writer())
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn delete_user_sessions(&self, user_id: &str) -> StoreResult<u64> {
                let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                    .bind(user_id)
                    .execute(self.writer())
                    .await
                    .map_err(map_err)?;
                Ok(done.rows_affected())
            }

            async fn publish_invalidation(
                &self,
                invalidation: &Invalidation,
                at: Timestamp,
            ) -> StoreResult<i64> {
                let (kind, subject, expires_at) = codec::encode_invalidation(invalidation);
                let row = sqlx::query(
                    "INSERT INTO invalidations (kind, subject, expires_at, created_at) \
                     VALUES ($1, $2, $3, $4) RETURNING seq",
                )
                .bind(kind)
                .bind(subject)
                .bind(expires_at)
                .bind(at)
                .fetch_one(self.writer())
                .await
                .map_err(map_err)?;
                row.try_get("seq").map_err(map_err)
            }

            async fn invalidations_since(
                &self,
                seq: i64,
            ) -> StoreResult<Vec<(i64, Invalidation)>> {
                let rows = sqlx::query(
                    "SELECT seq, kind, subject, expires_at FROM invalidations WHERE seq > $1 \
                     ORDER BY seq LIMIT 10000",
                )
                .bind(seq)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                decode_invalidations(&rows)
            }

            async fn latest_invalidation(&self) -> StoreResult<i64> {
                let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) AS seq FROM invalidations")
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err)?;
                row.try_get("seq").map_err(map_err)
            }

            async fn active_denylist(&self, now: Timestamp) -> StoreResult<Vec<Invalidation>> {
                let rows = sqlx::query(
                    "SELECT seq, kind, subject, expires_at FROM invalidations \
                     WHERE kind IN ('access_token', 'family') AND expires_at > $1",
                )
                .bind(now)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(decode_invalidations(&rows)?.into_iter().map(|(_, i)| i).collect())
            }

            async fn insert_signing_key(&self, key: &SigningKey) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO signing_keys (kid, alg, private_key, created_at, active_from, \
                     retire_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&key.kid)
                .bind(key.alg.as_str())
                .bind(key.private_key.as_slice())
                .bind(key.created_at)
                .bind(key.active_from)
                .bind(key.retire_at)
                .execute(self.writer())
                .await
                .map_err(map_err)?;
                Ok(())
            }

            async fn list_signing_keys(&self, now: Timestamp) -> StoreResult<Vec<SigningKey>> {
                let rows = sqlx::query(
                    "SELECT kid, alg, private_key, created_at, active_from, retire_at \
                     FROM signing_keys WHERE retire_at IS NULL OR retire_at > $1 \
                     ORDER BY active_from, kid",
                )
                .bind(now)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                all(&rows, signing_key_from)
            }

            async fn retire_signing_keys(&self, keep: &str, retire_at: Timestamp) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE signing_keys SET retire_at = $2 WHERE kid <> $1 AND retire_at IS NULL",
                )
                .bind(keep)
                .bind(retire_at)
                .execute(self.writer())
                .await
                .map_err(map_err)?;
                Ok(())
            }

            async fn reseal_signing_key(
                &self,
                kid: &str,
                old: &[u8],
                new: &[u8],
            ) -> StoreResult<bool> {
                let updated = sqlx::query(
                    "UPDATE signing_keys SET private_key = $3 WHERE kid = $1 AND private_key = $2",
                )
                .bind(kid)
                .bind(old)
                .bind(new)
                .execute(self.writer())
                .await
                .map_err(map_err)?;
                Ok(updated.rows_affected() == 1)
            }

            async fn init_secret_key_check(
                &self,
                check: &[u8],
                at: Timestamp,
            ) -> StoreResult<Vec<u8>> {
                // Read first: a database set up already needs no write (a read-only one starts).
                let recorded = sqlx::query("SELECT check_value FROM secret_key_check WHERE id = 1")
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?;
                if let Some(row) = recorded {
                    return row.try_get("check_value").map_err(map_err);
                }
                sqlx::query(
                    "INSERT INTO secret_key_check (id, check_value, created_at) VALUES (1, $1, $2) \
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(check)
                .bind(at)
                .execute(self.writer())
                .await
                .map_err(map_err)?;
                sqlx::query("SELECT check_value FROM secret_key_check WHERE id = 1")
                    .fetch_one(self.writer())
                    .await
                    .map_err(map_err)?
                    .try_get("check_value")
                    .map_err(map_err)
            }

            async fn insert_resource(&self, resource: &Resource) -> StoreResult<()> {
                sqlx::query(&format!(
                    "INSERT INTO resources ({RESOURCE_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                ))
                .bind(&resource.id)
                .bind(&resource.identifier)
                .bind(&resource.name)
                .bind(codec::join_resource_scopes(&resource.scopes))
                .bind(codec::join_names(&resource.self_service_scopes))
                .bind(resource.allow_api_keys)
                .bind(resource.access_token_ttl.map(i64::from))
                .bind(resource.created_at)
                .bind(resource.updated_at)
                .bind(resource.deleted_at)
                .execute(self.writer())
                .await
                .map_err(map_err)?;
                Ok(())
            }

            async fn get_resource(&self, id: &str) -> StoreResult<Option<Resource>> {
                let row = sqlx::query(&format!(
                    "SELECT {RESOURCE_COLUMNS} FROM resources WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
                row.as_ref().map(resource_from).transpose()
            }

            async fn get_resource_by_identifier(
                &self,
                identifier: &str,
            ) -> StoreResult<Option<Resource>> {
                let row = sqlx::query(&format!(
                    "SELECT {RESOURCE_COLUMNS} FROM resources WHERE identifier = $1"
                ))
                .bind(identifier)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
                row.as_ref().map(resource_from).transpose()
            }

            async fn list_resources(
                &self,
                after: Option<&str>,
                n: u32,
            ) -> StoreResult<Vec<Resource>> {
                let rows = sqlx::query(&format!(
                    "SELECT {RESOURCE_COLUMNS} FROM resources WHERE id > $1 \
                     AND deleted_at IS NULL ORDER BY id LIMIT $2"
                ))
                .bind(after.unwrap_or(""))
                .bind(limit(n))
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                all(&rows, resource_from)
            }

            async fn update_resource(
                &self,
                id: &str,
                changes: &ResourceChanges,
                at: Timestamp,
            ) -> StoreResult<Option<Resource>> {
                let row = sqlx::query(&format!(
                    "UPDATE resources SET name = COALESCE($2, name), \
                     scopes = COALESCE($3, scopes), \
                     self_service_scopes = COALESCE($4, self_service_scopes), \
                     allow_api_keys = COALESCE($5, allow_api_keys), \
                     access_token_ttl = CASE WHEN $6 THEN $7 ELSE access_token_ttl END, \
                     updated_at = $8 WHERE id = $1 AND deleted_at IS NULL \
                     RETURNING {RESOURCE_COLUMNS}"
                ))
                .bind(id)
                .bind(changes.name.as_deref())
                .bind(changes.scopes.as_deref().map(codec::join_resource_scopes))
                .bind(changes.self_service_scopes.as_deref().map(codec::join_names))
                .bind(changes.allow_api_keys)
                .bind(changes.access_token_ttl.is_some())
                .bind(changes.access_token_ttl.flatten().map(i64::from))
                .bind(at)
                .fetch_optional(self.writer())
                .await
                .map_err(map_err)?;
                row.as_ref().map(resource_from).transpose()
            }

            async fn delete_resource(
                &self,
                id: &str,
                at: Timestamp,
            ) -> StoreResult<Option<ResourceDeletion>> {
                crate::retry_contention(|| self.delete_resource_once(id, at)).await
            }

            async fn set_resource_grant(&self, grant: &ResourceGrant) -> StoreResult<()> {
                if grant.scopes.is_empty() {
                    sqlx::query("DELETE FROM resource_grants WHERE user_id = $1 AND resource_id = $2")
                        .bind(&grant.user_id)
                        .bind(&grant.resource_id)
                        .execute(self.writer())
                        .await
                        .map_err(map_err)?;
                    return Ok(());
                }
                sqlx::query(
                    "INSERT INTO resource_grants (user_id, resource_id, scopes, updated_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, resource_id) \
                     DO UPDATE SET scopes = excluded.scopes, updated_at = excluded.updated_at",
                )
                .bind(&grant.user_id)
                .bind(&grant.resource_id)
                .bind(codec::join_names(&grant.scopes))
                .bind(grant.updated_at)
                .execute(self.writer())
                .await
                .map_err(map_err)?;
                Ok(())
            }

            async fn get_resource_grant(
                &self,
                user_id: &str,
                resource_id: &str,
            ) -> StoreResult<Option<ResourceGrant>> {
                let row = sqlx::query(
                    "SELECT user_id, resource_id, scopes, updated_at FROM resource_grants \
                     WHERE user_id = $1 AND resource_id = $2",
                )
                .bind(user_id)
                .bind(resource_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
                row.as_ref().map(grant_from).transpose()
            }

            async fn list_resource_grants(&self, user_id: &str) -> StoreResult<Vec<ResourceGrant>> {
                let rows = sqlx::query(
                    "SELECT user_id, resource_id, scopes, updated_at FROM resource_grants \
                     WHERE user_id = $1 ORDER BY resource_id",
                )
                .bind(user_id)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                all(&rows, grant_from)
            }

            async fn delete_expired(&self, now: Timestamp) -> StoreResult<u64> {
                // Invalidations without an expiry are kept an hour: long enough for any
                // live process to have polled them.
                let statements = [
                    "DELETE FROM authorization_codes WHERE expires_at < $1",
                    "DELETE FROM sessions WHERE expires_at < $1",
                    "DELETE FROM refresh_tokens WHERE expires_at < $1 OR family_expires_at < $1",
                    "DELETE FROM invalidations WHERE (expires_at IS NOT NULL AND expires_at < $1) \
                     OR (expires_at IS NULL AND created_at < $1 - 3600)",
                    "DELETE FROM signing_keys WHERE retire_at IS NOT NULL AND retire_at < $1 - 86400",
                    "DELETE FROM api_keys WHERE revoked_at IS NOT NULL AND revoked_at < $1 - 7776000",
                ];
                let mut removed = 0;
                for sql in statements {
                    removed += sqlx::query(sql)
                        .bind(now)
                        .execute(self.writer())
                        .await
                        .map_err(map_err)?
                        .rows_affected();
                }
                Ok(removed)
            }
        }


        /// Single attempts of the write transactions, which `Store` retries on contention.
        impl $store {
            async fn delete_resource_once(
                &self,
                id: &str,
                at: Timestamp,
            ) -> StoreResult<Option<ResourceDeletion>> {
                let mut tx = self.begin_write().await?;
                let marked = sqlx::query(
                    "UPDATE resources SET deleted_at = $2, updated_at = $2 \
                     WHERE id = $1 AND deleted_at IS NULL",
                )
                .bind(id)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                if marked.rows_affected() != 1 {
                    return Ok(None);
                }
                let keys = sqlx::query(
                    "UPDATE api_keys SET revoked_at = $2 WHERE resource_id = $1 \
                     AND revoked_at IS NULL RETURNING hash",
                )
                .bind(id)
                .bind(at)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?
                .iter()
                .map(|r| codec::hash(r.try_get("hash").map_err(map_err)?))
                .collect::<StoreResult<Vec<_>>>()?;
                let families = sqlx::query(
                    "UPDATE refresh_tokens SET revoked_at = $2 WHERE resource_id = $1 \
                     AND revoked_at IS NULL RETURNING family_id",
                )
                .bind(id)
                .bind(at)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                let families = family_ids(&families)?;
                for sql in [
                    "DELETE FROM resource_grants WHERE resource_id = $1",
                    "DELETE FROM authorization_codes WHERE resource_id = $1",
                ] {
                    sqlx::query(sql)
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                }
                tx.commit().await.map_err(map_err)?;
                Ok(Some(ResourceDeletion { keys, families }))
            }
            async fn rotate_refresh_token_once(
                &self,
                old: &SecretHash,
                now: Timestamp,
                grace: i64,
                successor: &RefreshToken,
            ) -> StoreResult<RotateOutcome> {
                let mut tx = self.begin_write().await?;
                // The first use wins this conditional update; everyone else reads the row
                // it left (under the write lock) and is judged by the grace period.
                let rotated = sqlx::query(&format!(
                    "UPDATE refresh_tokens SET rotated_at = $2 WHERE hash = $1 \
                     AND rotated_at IS NULL AND revoked_at IS NULL AND expires_at > $2 \
                     RETURNING {REFRESH_COLUMNS}"
                ))
                .bind(old.0.as_slice())
                .bind(now)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
                let outcome = if let Some(row) = rotated {
                    insert_refresh(&mut *tx, successor).await?;
                    RotateOutcome::Rotated(refresh_from(&row)?)
                } else {
                    let row = sqlx::query(&format!(
                        "SELECT {REFRESH_COLUMNS} FROM refresh_tokens WHERE hash = $1"
                    ))
                    .bind(old.0.as_slice())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    match row.as_ref().map(refresh_from).transpose()? {
                        None => RotateOutcome::Invalid,
                        Some(t) if t.revoked_at.is_some() || t.family_expires_at <= now => {
                            RotateOutcome::Invalid
                        }
                        Some(t) => match t.rotated_at {
                            Some(at) if now - at < grace => {
                                // Within the grace period the successor is the one already
                                // stored (it is derived from the old token), unless it has
                                // been used itself: then this is a replay.
                                let stored = sqlx::query(&format!(
                                    "SELECT {REFRESH_COLUMNS} FROM refresh_tokens WHERE hash = $1"
                                ))
                                .bind(successor.hash.0.as_slice())
                                .fetch_optional(&mut *tx)
                                .await
                                .map_err(map_err)?;
                                match stored.as_ref().map(refresh_from).transpose()? {
                                    None => {
                                        insert_refresh(&mut *tx, successor).await?;
                                        RotateOutcome::Rotated(t)
                                    }
                                    Some(s) if s.rotated_at.is_some() => {
                                        revoke_family(&mut *tx, &t.family_id, now).await?;
                                        RotateOutcome::ReuseDetected(t)
                                    }
                                    Some(s) if s.revoked_at.is_some() => RotateOutcome::Invalid,
                                    Some(_) => RotateOutcome::Rotated(t),
                                }
                            }
                            Some(_) => {
                                revoke_family(&mut *tx, &t.family_id, now).await?;
                                RotateOutcome::ReuseDetected(t)
                            }
                            // Not rotated, so it failed the update by expiring.
                            None => RotateOutcome::Invalid,
                        },
                    }
                };
                tx.commit().await.map_err(map_err)?;
                Ok(outcome)
            }
            async fn rotate_api_key_once(
                &self,
                old_id: &str,
                old_expires_at: Timestamp,
                new_key: &ApiKey,
            ) -> StoreResult<bool> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(
                    "UPDATE api_keys SET expires_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                )
                .bind(old_id)
                .bind(old_expires_at)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                if done.rows_affected() != 1 {
                    return Ok(false);
                }
                insert_key(&mut *tx, new_key).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(true)
            }
            async fn add_api_key_usage_once(&self, counts: &[UsageCount]) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                for count in counts {
                    sqlx::query(
                        "INSERT INTO api_key_usage (key_id, hour, outcome, count) \
                         SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM api_keys WHERE id = $1) \
                         ON CONFLICT (key_id, hour, outcome) \
                         DO UPDATE SET count = api_key_usage.count + excluded.count",
                    )
                    .bind(&count.key_id)
                    .bind(count.hour)
                    .bind(count.outcome.as_str())
                    .bind(i64::try_from(count.count).unwrap_or(i64::MAX))
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                }
                tx.commit().await.map_err(map_err)
            }
            async fn record_api_key_use_once(&self, uses: &[(String, Timestamp)]) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                for (id, at) in uses {
                    sqlx::query(
                        "UPDATE api_keys SET last_used_at = $2 WHERE id = $1 \
                         AND (last_used_at IS NULL OR last_used_at < $2)",
                    )
                    .bind(id)
                    .bind(*at)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                }
                tx.commit().await.map_err(map_err)
            }
            async fn create_user_once(
                &self,
                user: &User,
                first_key: Option<&ApiKey>,
                event: &AuditEvent,
            ) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(&format!(
                    "INSERT INTO users ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                ))
                .bind(&user.id)
                .bind(&user.email)
                .bind(&user.name)
                .bind(user.role.as_str())
                .bind(&user.password_hash)
                .bind(user.created_at)
                .bind(user.updated_at)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                if let Some(key) = first_key {
                    insert_key(&mut *tx, key).await?;
                }
                insert_event(&mut *tx, event).await?;
                tx.commit().await.map_err(map_err)
            }
        }

        /// Applies the migrations `tx` has not seen yet, in order, recording each; the caller
        /// holds the lock that keeps two processes from doing it at once.
        async fn apply_migrations(
            tx: &mut sqlx::Transaction<'static, Db>,
            migrations: &[(i64, &str)],
        ) -> StoreResult<()> {
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS schema_migrations \
                 (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
            )
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            for (version, sql) in migrations {
                let done = sqlx::query("SELECT version FROM schema_migrations WHERE version = $1")
                    .bind(version)
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(map_err)?;
                if done.is_some() {
                    continue;
                }
                for statement in $crate::migrate::statements(sql) {
                    sqlx::query(statement)
                        .execute(&mut **tx)
                        .await
                        .map_err(map_err)?;
                }
                sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                    .bind(version)
                    .bind(now)
                    .execute(&mut **tx)
                    .await
                    .map_err(map_err)?;
            }
            Ok(())
        }

        fn decode_invalidations(rows: &[$row]) -> StoreResult<Vec<(i64, Invalidation)>> {
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let seq: i64 = row.try_get("seq").map_err(map_err)?;
                let kind: String = row.try_get("kind").map_err(map_err)?;
                let subject: String = row.try_get("subject").map_err(map_err)?;
                let expires_at: Option<i64> = row.try_get("expires_at").map_err(map_err)?;
                match codec::decode_invalidation(&kind, subject, expires_at) {
                    Some(inv) => out.push((seq, inv)),
                    None => tracing::warn!(seq, kind, "unreadable invalidation skipped"),
                }
            }
            Ok(out)
        }

        async fn insert_key<'e, E: sqlx::Executor<'e, Database = Db>>(
            executor: E,
            key: &ApiKey,
        ) -> StoreResult<()> {
            sqlx::query(&format!(
                "INSERT INTO api_keys ({KEY_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
            ))
            .bind(&key.id)
            .bind(&key.user_id)
            .bind(&key.name)
            .bind(&key.prefix)
            .bind(&key.last_four)
            .bind(key.hash.0.as_slice())
            .bind(key.scopes.bits())
            .bind(key.created_at)
            .bind(key.last_used_at)
            .bind(key.expires_at)
            .bind(key.revoked_at)
            .bind(key.rate_limit.map(i64::from))
            .bind(&key.created_by_client)
            .bind(key.resource.as_ref().map(|r| r.id.as_str()))
            .bind(key.resource.as_ref().map(|r| r.identifier.as_str()))
            .bind(codec::join_names(&key.resource_scopes))
            .bind(&key.metadata)
            .execute(executor)
            .await
            .map_err(map_err)?;
            Ok(())
        }

        async fn insert_event<'e, E: sqlx::Executor<'e, Database = Db>>(
            executor: E,
            event: &AuditEvent,
        ) -> StoreResult<()> {
            sqlx::query(&format!(
                "INSERT INTO audit_events ({EVENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
            ))
            .bind(&event.id)
            .bind(&event.user_id)
            .bind(&event.kind)
            .bind(&event.ip)
            .bind(&event.detail)
            .bind(event.created_at)
            .execute(executor)
            .await
            .map_err(map_err)?;
            Ok(())
        }

        async fn insert_refresh<'e, E: sqlx::Executor<'e, Database = Db>>(
            executor: E,
            token: &RefreshToken,
        ) -> StoreResult<()> {
            sqlx::query(&format!(
                "INSERT INTO refresh_tokens ({REFRESH_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
            ))
            .bind(token.hash.0.as_slice())
            .bind(&token.family_id)
            .bind(&token.client_id)
            .bind(&token.user_id)
            .bind(token.scopes.bits())
            .bind(token.issued_at)
            .bind(token.expires_at)
            .bind(token.family_expires_at)
            .bind(token.auth_time)
            .bind(token.rotated_at)
            .bind(token.revoked_at)
            .bind(token.successor_key.map(|k| k.0.to_vec()))
            .bind(&token.resource_id)
            .bind(codec::join_names(&token.resource_scopes))
            .execute(executor)
            .await
            .map_err(map_err)?;
            Ok(())
        }

        async fn revoke_family<'e, E: sqlx::Executor<'e, Database = Db>>(
            executor: E,
            family_id: &str,
            at: Timestamp,
        ) -> StoreResult<u64> {
            let done = sqlx::query(
                "UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 \
                 AND revoked_at IS NULL",
            )
            .bind(family_id)
            .bind(at)
            .execute(executor)
            .await
            .map_err(map_err)?;
            Ok(done.rows_affected())
        }
    };
}
