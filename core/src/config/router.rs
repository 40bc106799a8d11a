//! Router models in the configuration: a model entry with `router` (its candidates and cost
//! ceiling) instead of a cluster, checked once every model is known.

use std::collections::HashMap;

use serde::Deserialize;

use crate::limits;
use crate::router::Router;
use crate::routing::{Model, ModelType, Price};

/// A model entry's `router`: `{"candidates": ["qai-flash", "qai-pro"], "max_request_credits": 20}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRouter {
    candidates: Vec<String>,
    max_request_credits: Option<f64>,
}

/// A model entry's cluster index: its `cluster`'s, or for a router (which has none) 0 until
/// [`compile_routers`] gives it its first candidate's.
pub(super) fn model_cluster(
    here: &str,
    cluster: Option<&str>,
    router: bool,
    cluster_index: &HashMap<String, usize>,
) -> Result<usize, String> {
    match (cluster, router) {
        (Some(c), false) => {
            cluster_index.get(c).copied().ok_or_else(|| format!("{here}.cluster: no cluster named '{c}' in 'clusters'"))
        }
        (None, true) => Ok(0),
        (Some(_), true) => Err(format!("{here}: a router model has no 'cluster'")),
        (None, false) => Err(format!("{here}: missing field 'cluster'")),
    }
}

/// Compiles the routers of `models` (`raw`: model index and its `router`): every candidate a
/// text model of the catalog with a context window, not a router itself, listed once; the router
/// itself a text model without a price of its own (the candidate that serves is priced). A router
/// carries its first candidate's cluster: it is never routed itself, the field only names a real
/// cluster.
pub(super) fn compile_routers(models: &mut [Model], raw: Vec<(usize, RawRouter)>) -> Result<(), String> {
    for (i, m) in models.iter().enumerate() {
        if m.context_window == Some(0) {
            return Err(format!("models[{i}].context_window: must be a positive number of tokens"));
        }
    }
    let index: HashMap<String, usize> = models.iter().enumerate().map(|(i, m)| (m.id.clone(), i)).collect();
    let routers: Vec<usize> = raw.iter().map(|(i, _)| *i).collect();
    for (i, r) in raw {
        let here = format!("models[{i}].router");
        let Some(m) = models.get(i) else { continue };
        if m.model_type != ModelType::Text {
            return Err(format!("models[{i}].type: a router model must be a text model"));
        }
        if m.sandbox || m.price != Price::default() {
            return Err(format!("models[{i}]: a router model has no price or sandbox of its own (its candidates do)"));
        }
        if r.candidates.is_empty() {
            return Err(format!("{here}.candidates: must name at least one model"));
        }
        let mut candidates = Vec::with_capacity(r.candidates.len());
        for (j, id) in r.candidates.iter().enumerate() {
            let at = format!("{here}.candidates[{j}]");
            let c = *index.get(id).ok_or_else(|| format!("{at}: no model '{id}' in 'models'"))?;
            let cand = models.get(c).ok_or_else(|| format!("{at}: no model '{id}' in 'models'"))?;
            if routers.contains(&c) {
                return Err(format!("{at}: '{id}' is a router model itself"));
            }
            if cand.model_type != ModelType::Text {
                return Err(format!("{at}: '{id}' is not a text model"));
            }
            if cand.context_window.is_none() {
                return Err(format!("{at}: '{id}' has no 'context_window' (a router candidate needs one)"));
            }
            if candidates.contains(&c) {
                return Err(format!("{at}: '{id}' is listed twice"));
            }
            candidates.push(c);
        }
        let max_request_micros = match r.max_request_credits {
            Some(c) if c.is_finite() && c > 0.0 => Some(limits::credits_to_micros(c)),
            Some(_) => return Err(format!("{here}.max_request_credits: must be a positive number")),
            None => None,
        };
        let cluster = candidates.first().and_then(|&c| models.get(c)).map(|c| c.cluster);
        if let Some(m) = models.get_mut(i) {
            m.cluster = cluster.unwrap_or(m.cluster);
            m.router = Some(Box::new(Router { candidates, max_request_micros }));
        }
    }
    Ok(())
}
