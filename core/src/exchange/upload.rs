//! A multipart upload (a transcription), streamed rather than buffered: its `model` field is
//! found in the first bytes, the request is routed on it, and the rest is counted (never kept)
//! against the upload cap and the spend reservation.

use super::admit::store_error;
use super::route::wrong_task;
use super::{remove, set, Env, Exchange, RequestHead, UploadAction};
use crate::config::{Config, LimitsStore};
use crate::errors::{Code, GatewayError};
use crate::media::{self, FieldScan};
use crate::pricing;
use crate::routing::ModelType;

/// How far into an upload the `model` field may be looked for.
pub const UPLOAD_SCAN_LIMIT: usize = 1024 * 1024;

#[derive(Debug)]
pub(super) struct Upload {
    boundary: String,
    declared: Option<u64>,
    seen: u64,
    forwarded: bool,
}

impl Exchange {
    /// A multipart upload: refused at once when its declared length is over the cap (before a
    /// byte of it is read), else streamed and counted.
    pub(super) fn start_upload(&mut self, cfg: &Config, head: &RequestHead) -> Result<(), GatewayError> {
        if let Some(n) = head.content_length.filter(|n| *n > cfg.max_upload_bytes) {
            return Err(too_large_upload(cfg.max_upload_bytes, n));
        }
        let boundary = head.content_type.and_then(media::multipart_boundary).ok_or_else(|| {
            GatewayError::bad(
                "file",
                "Transcriptions take a multipart/form-data body with the fields 'model' and 'file'",
            )
        })?;
        self.upload = Some(Upload { boundary, declared: head.content_length, seen: 0, forwarded: false });
        Ok(())
    }

    /// Whether a streamed upload was routed already (its pieces are only counted now).
    pub fn upload_routed(&self) -> bool {
        self.upload.as_ref().is_some_and(|u| u.forwarded)
    }

    /// Whether this request's body is a streamed upload (see `on_upload_body`).
    pub fn is_upload(&self) -> bool {
        self.upload.is_some()
    }

    /// A piece of a streamed upload. Before routing, `buffered` is the whole body so far (the
    /// host buffers it while the answer is `NeedMore`) and `size` its length; after, `size` is the
    /// new piece's length (the piece itself is not needed). Bytes are counted, never kept.
    pub fn on_upload_body(
        &mut self,
        cfg: &Config,
        buffered: &[u8],
        size: usize,
        end_of_stream: bool,
        env: &Env,
    ) -> UploadAction {
        self.now_ms = env.now_ms;
        let max = cfg.max_upload_bytes;
        let Some(up) = self.upload.as_mut() else { return UploadAction::Continue };
        if up.forwarded {
            up.seen = up.seen.saturating_add(size as u64);
            if up.seen > max {
                let e = too_large_upload(max, up.seen);
                return UploadAction::Reply(self.fail(e));
            }
            let counted = up.seen.max(up.declared.unwrap_or(0));
            return match self.grow_upload_reservation(cfg, env, counted) {
                Ok(()) => UploadAction::Continue,
                Err(e) => UploadAction::Reply(self.fail(e)),
            };
        }
        up.seen = size as u64;
        if up.seen > max {
            let e = too_large_upload(max, up.seen);
            return UploadAction::Reply(self.fail(e));
        }
        match media::scan_field(buffered, &up.boundary, "model", end_of_stream) {
            FieldScan::NeedMore if buffered.len() < UPLOAD_SCAN_LIMIT => UploadAction::NeedMore,
            FieldScan::NeedMore | FieldScan::Absent => {
                let e = GatewayError::missing("model");
                let e = GatewayError { message: format!("{} (a form field, before the file)", e.message), ..e };
                UploadAction::Reply(self.fail(e))
            }
            FieldScan::Found { value, start, end } => match self.route_upload(cfg, buffered, &value, start, end, env) {
                Ok(a) => a,
                Err(e) => UploadAction::Reply(self.fail(e)),
            },
        }
    }

    /// After routing, each counted piece of an upload raises its estimate (seconds from the bytes
    /// counted so far) and reserves the difference on the spend caps, so a chunked upload that
    /// was admitted on its first bytes cannot outgrow its reservation: once the estimate no
    /// longer fits, 402 `insufficient_funds` mid-upload (the reservation is released at the end).
    fn grow_upload_reservation(&mut self, cfg: &Config, env: &Env, counted: u64) -> Result<(), GatewayError> {
        let units = media::estimated_upload_seconds(counted);
        if self.units.is_some_and(|u| u >= units) {
            return Ok(());
        }
        let Some(model) = self.model.as_deref().and_then(|m| cfg.model(m)) else { return Ok(()) };
        let needed = pricing::media_micros(model, &self.endpoint, units);
        self.units = Some(units);
        if self.remote.hold.is_some() {
            return Err(GatewayError::new(
                Code::BadRequest,
                format!("The upload is longer than its declared length ({counted} bytes counted)"),
            ));
        }
        let Some(hold) = self.reserved.as_mut() else { return Ok(()) };
        match hold.grow_to(env.store, needed) {
            Ok(true) => Ok(()),
            Ok(false) => Err(GatewayError::new(
                Code::InsufficientFunds,
                format!(
                    "The spend cap of this key or account is reached: the upload so far ({counted} bytes, about {units} s of audio) costs more than is left; raise the cap to continue"
                ),
            )),
            Err(e) => Err(store_error(e)),
        }
    }

    fn route_upload(
        &mut self,
        cfg: &Config,
        buffered: &[u8],
        name: &str,
        start: usize,
        end: usize,
        env: &Env,
    ) -> Result<UploadAction, GatewayError> {
        let model = self.resolve_model(cfg, name, Some(ModelType::Audio))?;
        if !media::task_matches(&self.endpoint, model) {
            return Err(wrong_task(name, &self.endpoint));
        }
        let declared = self.upload.as_ref().and_then(|u| u.declared);
        let seen = self.upload.as_ref().map(|u| u.seen).unwrap_or(0);
        // The limits service cannot be asked again mid-upload: its hold covers the declared
        // length, or the largest upload when none is declared (a longer one is refused below).
        let basis = match (&cfg.limits, declared) {
            (LimitsStore::Remote(_), None) => cfg.max_upload_bytes,
            _ => declared.unwrap_or(seen),
        };
        let units = media::estimated_upload_seconds(basis);
        self.units = Some(units);
        // An estimate until the response reports the seconds it transcribed.
        self.units_estimated = true;
        // Named and valid: a refusal by the limits below is counted and recorded under it.
        self.model = Some(name.to_string());
        if !self.admit(cfg, env, model, units, None)? {
            return Ok(UploadAction::AskLimits);
        }
        let cluster = self.route_to(cfg, model)?;
        let mut body = None;
        let mut length = declared;
        if model.upstream_model != name {
            let mut b = Vec::with_capacity(buffered.len() + model.upstream_model.len());
            b.extend_from_slice(buffered.get(..start).unwrap_or(&[]));
            b.extend_from_slice(model.upstream_model.as_bytes());
            b.extend_from_slice(buffered.get(end..).unwrap_or(&[]));
            length = declared.map(|n| (n + b.len() as u64).saturating_sub(buffered.len() as u64));
            body = Some(b);
        }
        if let Some(u) = self.upload.as_mut() {
            u.forwarded = true;
        }
        let path = format!("{}{}", cluster.base_path, self.endpoint.upstream_suffix());
        let mut edits = self.upstream_edits(cfg, cluster, path);
        match length {
            Some(n) => edits.push(set("content-length", n.to_string())),
            None => edits.push(remove("content-length")),
        }
        Ok(UploadAction::Forward { edits, body })
    }
}

pub(super) fn too_large_upload(max: u64, got: u64) -> GatewayError {
    GatewayError::new(
        Code::RequestTooLarge,
        format!("The upload is larger than the limit of {max} bytes ({got} bytes)"),
    )
}
