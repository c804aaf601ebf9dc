//! `webhooks`, and `webhook_deliveries` (their outbox).

use sqlx::FromRow;

use crate::backend::{Backend, Exec};
use crate::tables::{audit_events, model, models};
use crate::{codec, map_err, retry_contention};
use netapi_core::ids::new_id;
use netapi_core::model::{
    AuditEvent, ClaimedDelivery, DeliveryAttempt, DeliveryStatus, OutboxEvent, Webhook,
    WebhookDelivery,
};
use netapi_core::store::StoreResult;
use netapi_core::{StoreError, Timestamp};

macro_rules! columns {
    () => {
        "id, created_by, url, events, secret, created_at, disabled_at"
    };
}

macro_rules! delivery_columns {
    () => {
        "id, webhook_id, event_id, event_type, payload, status, attempts, next_attempt_at, \
         last_status_code, last_error, created_at, delivered_at"
    };
}

/// Takes the lowest free slot of `0..$8` (each live webhook holds one, under a unique
/// index): when two creations pick the same slot at once, the index refuses the second,
/// which looks again. Inserts nothing when every slot is taken.
const INSERT: &str = concat!(
    "WITH RECURSIVE slots(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM slots WHERE n + 1 < $8) \
     INSERT INTO webhooks (",
    columns!(),
    ", slot) SELECT $1, $2, $3, $4, $5, $6, $7, n FROM slots \
     WHERE n NOT IN (SELECT slot FROM webhooks WHERE disabled_at IS NULL AND slot IS NOT NULL) \
     ORDER BY n LIMIT 1"
);
const SELECT_BY_ID: &str = concat!("SELECT ", columns!(), " FROM webhooks WHERE id = $1");
const LIST_LIVE: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM webhooks WHERE disabled_at IS NULL AND id > $1 ORDER BY id LIMIT $2"
);
const SELECT_LIVE_EVENTS: &str = "SELECT id, events FROM webhooks WHERE disabled_at IS NULL";
const DISABLE: &str = "UPDATE webhooks SET disabled_at = $2 WHERE id = $1 AND disabled_at IS NULL";

const INSERT_DELIVERY: &str = concat!(
    "INSERT INTO webhook_deliveries (",
    delivery_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
);
const SELECT_DELIVERY: &str = concat!(
    "SELECT ",
    delivery_columns!(),
    " FROM webhook_deliveries WHERE webhook_id = $1 AND id = $2"
);
/// Newest first; ids sort by time.
const LIST_DELIVERIES: &str = concat!(
    "SELECT ",
    delivery_columns!(),
    " FROM webhook_deliveries WHERE webhook_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
);
/// One statement, so that each due delivery goes to one caller: PostgreSQL locks each row
/// the `UPDATE` changes and, for a row another caller changed first, checks the conditions
/// again on the new version (whose `next_attempt_at` is then a lease in the future, so it is
/// skipped); SQLite runs one write at a time.
const CLAIM: &str = concat!(
    "UPDATE webhook_deliveries SET next_attempt_at = $2, leased_until = $2 WHERE id IN (\
     SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
     WHERE d.status = 'pending' AND d.next_attempt_at <= $1 AND w.disabled_at IS NULL \
     ORDER BY d.next_attempt_at, d.id LIMIT $3) \
     AND status = 'pending' AND next_attempt_at <= $1 RETURNING ",
    delivery_columns!(),
    ", (SELECT w.url FROM webhooks w WHERE w.id = webhook_id) AS url, \
     (SELECT w.secret FROM webhooks w WHERE w.id = webhook_id) AS secret"
);
/// A redelivery asked for during the attempt (`redeliver_at`) keeps the delivery pending,
/// due when it was asked for.
const RECORD_ATTEMPT: &str = "UPDATE webhook_deliveries SET \
     status = CASE WHEN redeliver_at IS NULL THEN $3 ELSE 'pending' END, \
     attempts = attempts + 1, next_attempt_at = COALESCE(redeliver_at, $4), \
     last_status_code = $5, last_error = $6, delivered_at = COALESCE($7, delivered_at), \
     leased_until = NULL, redeliver_at = NULL \
     WHERE id = $1 AND status = 'pending' AND next_attempt_at = $2";
/// Whether an attempt holds an unexpired lease on the delivery at `$3` (every expression of
/// an `UPDATE` reads the row as it was before it).
macro_rules! leased {
    () => {
        "(status = 'pending' AND leased_until IS NOT NULL AND leased_until > $3)"
    };
}

/// Due at once, unless an attempt holds an unexpired lease: then marked, and made due when
/// that attempt is recorded (changing `next_attempt_at` would end the lease and let another
/// instance send the delivery while the first still does).
const REDELIVER: &str = concat!(
    "UPDATE webhook_deliveries SET \
     status = CASE WHEN ",
    leased!(),
    " THEN status ELSE 'pending' END, next_attempt_at = CASE WHEN ",
    leased!(),
    " THEN next_attempt_at ELSE $3 END, redeliver_at = CASE WHEN ",
    leased!(),
    " THEN $3 ELSE NULL END WHERE webhook_id = $1 AND id = $2"
);

/// Over (delivered, failed, or pending for a deleted webhook, never to be attempted) and
/// created before the cutoff.
pub(crate) const PRUNE_DELIVERIES: &str = delete_batch!(
    "webhook_deliveries",
    "id",
    "created_at < $1 AND (status <> 'pending' \
     OR webhook_id IN (SELECT id FROM webhooks WHERE disabled_at IS NOT NULL))"
);

#[derive(FromRow)]
pub(crate) struct WebhookRow {
    id: String,
    created_by: String,
    url: String,
    events: String,
    secret: Vec<u8>,
    created_at: i64,
    disabled_at: Option<i64>,
}

impl TryFrom<WebhookRow> for Webhook {
    type Error = StoreError;

    fn try_from(row: WebhookRow) -> StoreResult<Self> {
        Ok(Self {
            id: row.id,
            created_by: row.created_by,
            url: row.url,
            events: codec::split_names(&row.events),
            sealed_secret: row.secret,
            created_at: row.created_at,
            disabled_at: row.disabled_at,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct DeliveryRow {
    id: String,
    webhook_id: String,
    event_id: String,
    event_type: String,
    payload: String,
    status: String,
    attempts: i64,
    next_attempt_at: i64,
    last_status_code: Option<i64>,
    last_error: Option<String>,
    created_at: i64,
    delivered_at: Option<i64>,
}

impl TryFrom<DeliveryRow> for WebhookDelivery {
    type Error = StoreError;

    fn try_from(row: DeliveryRow) -> StoreResult<Self> {
        Ok(Self {
            id: row.id,
            webhook_id: row.webhook_id,
            event_id: row.event_id,
            event_type: row.event_type,
            payload: row.payload,
            status: codec::delivery_status(&row.status)?,
            attempts: u32::try_from(row.attempts).unwrap_or(u32::MAX),
            next_attempt_at: row.next_attempt_at,
            last_status_code: row.last_status_code.and_then(|c| u16::try_from(c).ok()),
            last_error: row.last_error,
            created_at: row.created_at,
            delivered_at: row.delivered_at,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct ClaimedRow {
    #[sqlx(flatten)]
    delivery: DeliveryRow,
    url: String,
    secret: Vec<u8>,
}

impl TryFrom<ClaimedRow> for ClaimedDelivery {
    type Error = StoreError;

    fn try_from(row: ClaimedRow) -> StoreResult<Self> {
        Ok(Self {
            delivery: row.delivery.try_into()?,
            url: row.url,
            sealed_secret: row.secret,
        })
    }
}

#[derive(FromRow)]
struct SubscriptionRow {
    id: String,
    events: String,
}

pub(crate) async fn insert(
    db: &impl Backend,
    webhook: &Webhook,
    max_live: u32,
) -> StoreResult<bool> {
    // Each refusal by the slot index means another creation took that slot: there are at
    // most `max_live` of those before every slot is taken.
    for _ in 0..=max_live {
        let inserted = db
            .writer()
            .await?
            .execute(
                INSERT,
                &[
                    (&webhook.id).into(),
                    (&webhook.created_by).into(),
                    (&webhook.url).into(),
                    codec::join_names(&webhook.events).into(),
                    webhook.sealed_secret.as_slice().into(),
                    webhook.created_at.into(),
                    webhook.disabled_at.into(),
                    i64::from(max_live).into(),
                ],
            )
            .await;
        match inserted {
            Ok(changed) => return Ok(changed == 1),
            Err(StoreError::Conflict(_)) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(false)
}

pub(crate) async fn get(db: &impl Backend, id: &str) -> StoreResult<Option<Webhook>> {
    let row: Option<WebhookRow> = db
        .reader()
        .await?
        .fetch_optional(SELECT_BY_ID, &[id.into()])
        .await?;
    model(row)
}

pub(crate) async fn list_live(
    db: &impl Backend,
    after: Option<&str>,
    limit: u32,
) -> StoreResult<Vec<Webhook>> {
    let rows: Vec<WebhookRow> = db
        .reader()
        .await?
        .fetch_all(
            LIST_LIVE,
            &[after.unwrap_or("").into(), i64::from(limit).into()],
        )
        .await?;
    models(rows)
}

pub(crate) async fn disable(db: &impl Backend, id: &str, at: Timestamp) -> StoreResult<bool> {
    let changed = db
        .writer()
        .await?
        .execute(DISABLE, &[id.into(), at.into()])
        .await?;
    Ok(changed == 1)
}

/// The event, and a pending delivery of it to each live webhook subscribed to its type, in
/// one transaction.
pub(crate) async fn record_event(
    db: &impl Backend,
    event: &AuditEvent,
    outbox: Option<&OutboxEvent>,
) -> StoreResult<()> {
    retry_contention(|| async move {
        let mut tx = db.begin_write().await?;
        insert_event(&mut *tx, event, outbox).await?;
        tx.commit().await.map_err(map_err)
    })
    .await
}

/// Inserts the event and its deliveries (on a connection inside the caller's transaction).
pub(crate) async fn insert_event(
    tx: &mut impl Exec,
    event: &AuditEvent,
    outbox: Option<&OutboxEvent>,
) -> StoreResult<()> {
    audit_events::insert(tx, event).await?;
    let Some(outbox) = outbox else {
        return Ok(());
    };
    let subscriptions: Vec<SubscriptionRow> = tx.fetch_all(SELECT_LIVE_EVENTS, &[]).await?;
    for webhook in subscriptions
        .iter()
        .filter(|w| w.events.split(' ').any(|e| e == outbox.event_type))
    {
        tx.execute(
            INSERT_DELIVERY,
            &[
                new_id("whd").into(),
                (&webhook.id).into(),
                (&event.id).into(),
                (&outbox.event_type).into(),
                (&outbox.payload).into(),
                DeliveryStatus::Pending.as_str().into(),
                0i64.into(),
                event.created_at.into(),
                None::<i64>.into(),
                None::<String>.into(),
                event.created_at.into(),
                None::<i64>.into(),
            ],
        )
        .await?;
    }
    Ok(())
}

pub(crate) async fn get_delivery(
    db: &impl Backend,
    webhook_id: &str,
    id: &str,
) -> StoreResult<Option<WebhookDelivery>> {
    let row: Option<DeliveryRow> = db
        .reader()
        .await?
        .fetch_optional(SELECT_DELIVERY, &[webhook_id.into(), id.into()])
        .await?;
    model(row)
}

pub(crate) async fn list_deliveries(
    db: &impl Backend,
    webhook_id: &str,
    before: Option<&str>,
    limit: u32,
) -> StoreResult<Vec<WebhookDelivery>> {
    // "~" sorts after every id.
    let rows: Vec<DeliveryRow> = db
        .reader()
        .await?
        .fetch_all(
            LIST_DELIVERIES,
            &[
                webhook_id.into(),
                before.unwrap_or("~").into(),
                i64::from(limit).into(),
            ],
        )
        .await?;
    models(rows)
}

pub(crate) async fn claim(
    db: &impl Backend,
    now: Timestamp,
    lease_until: Timestamp,
    limit: u32,
) -> StoreResult<Vec<ClaimedDelivery>> {
    let rows: Vec<ClaimedRow> = db
        .writer()
        .await?
        .fetch_all(
            CLAIM,
            &[now.into(), lease_until.into(), i64::from(limit).into()],
        )
        .await?;
    models(rows)
}

pub(crate) async fn record_attempt(
    db: &impl Backend,
    id: &str,
    lease_until: Timestamp,
    attempt: &DeliveryAttempt,
) -> StoreResult<bool> {
    let changed = db
        .writer()
        .await?
        .execute(
            RECORD_ATTEMPT,
            &[
                id.into(),
                lease_until.into(),
                attempt.status.as_str().into(),
                attempt.next_attempt_at.into(),
                attempt.status_code.map(i64::from).into(),
                attempt.error.as_deref().into(),
                (attempt.status == DeliveryStatus::Delivered)
                    .then_some(attempt.at)
                    .into(),
            ],
        )
        .await?;
    Ok(changed == 1)
}

pub(crate) async fn redeliver(
    db: &impl Backend,
    webhook_id: &str,
    id: &str,
    at: Timestamp,
) -> StoreResult<bool> {
    let changed = db
        .writer()
        .await?
        .execute(REDELIVER, &[webhook_id.into(), id.into(), at.into()])
        .await?;
    Ok(changed == 1)
}
