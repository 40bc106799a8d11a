//! A model's `fallbacks`: the models that serve a request in its place, in order, when its
//! upstream fails before any byte of the response reached the client (see
//! `crate::exchange::failover`). Resolved to model indices and validated once: every entry is a
//! known text model with the same `sandbox` flag, listed once, never the model itself, and no
//! model is reachable from itself through the lists (a cycle is refused).

use std::collections::HashMap;

use crate::routing::{Model, ModelType};

/// The longest `fallbacks` list: each entry can cost one more upstream call per request.
pub const MAX_FALLBACKS: usize = 4;

/// Resolves each model's raw `fallbacks` (by position in `models`) to indices, or names the first
/// invalid entry (`models[i].fallbacks[j]: ...`).
pub(super) fn resolve(
    models: &mut [Model],
    index: &HashMap<String, usize>,
    raw: Vec<Vec<String>>,
) -> Result<(), String> {
    let mut lists: Vec<Vec<usize>> = Vec::with_capacity(raw.len());
    for (i, names) in raw.into_iter().enumerate() {
        let here = format!("models[{i}].fallbacks");
        let Some(model) = models.get(i) else { return Err(format!("{here}: no such model")) };
        if names.len() > MAX_FALLBACKS {
            return Err(format!("{here}: at most {MAX_FALLBACKS} models"));
        }
        if !names.is_empty() && model.model_type != ModelType::Text {
            return Err(format!("{here}: only text models fail over"));
        }
        let mut list = Vec::with_capacity(names.len());
        for (j, name) in names.iter().enumerate() {
            let at = format!("{here}[{j}]");
            let &f = index.get(name).ok_or_else(|| format!("{at}: no model named '{name}' in 'models'"))?;
            let Some(fallback) = models.get(f) else { return Err(format!("{at}: no model named '{name}'")) };
            if f == i {
                return Err(format!("{at}: a model cannot fall back to itself"));
            }
            if list.contains(&f) {
                return Err(format!("{at}: '{name}' is listed twice"));
            }
            if fallback.model_type != ModelType::Text {
                return Err(format!("{at}: '{name}' is not a text model"));
            }
            if fallback.sandbox != model.sandbox {
                return Err(format!("{at}: '{name}' and '{}' must both be sandbox models or neither", model.id));
            }
            list.push(f);
        }
        lists.push(list);
    }
    if let Some((i, j)) = first_cycle(&lists) {
        let name = |m: usize| models.get(m).map(|m| m.id.clone()).unwrap_or_default();
        return Err(format!(
            "models[{i}].fallbacks: '{}' falls back to '{}', which leads back to '{}' (fallbacks must not form a cycle)",
            name(i),
            name(j),
            name(i)
        ));
    }
    for (m, list) in models.iter_mut().zip(lists) {
        m.fallbacks = list;
    }
    Ok(())
}

/// The first edge `(from, to)` of the fallback graph that closes a cycle, if any (an iterative
/// depth-first search: no recursion on the configuration's depth).
fn first_cycle(lists: &[Vec<usize>]) -> Option<(usize, usize)> {
    // 0: not seen, 1: on the current path, 2: done.
    let mut state = vec![0u8; lists.len()];
    for start in 0..lists.len() {
        if state.get(start) != Some(&0) {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        if let Some(s) = state.get_mut(start) {
            *s = 1;
        }
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            let Some(&to) = lists.get(node).and_then(|l| l.get(*next)) else {
                if let Some(s) = state.get_mut(node) {
                    *s = 2;
                }
                stack.pop();
                continue;
            };
            *next += 1;
            match state.get(to) {
                Some(1) => return Some((node, to)),
                Some(0) => {
                    if let Some(s) = state.get_mut(to) {
                        *s = 1;
                    }
                    stack.push((to, 0));
                }
                _ => {}
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::first_cycle;
    use crate::config::Config;

    fn config(models: &str) -> Result<Config, String> {
        Config::parse(
            format!(
                r#"{{"clusters": [{{"name": "c"}}], "models": [{models}],
                "accounts": [{{"id": "a"}}], "keys": []}}"#
            )
            .as_bytes(),
        )
    }

    #[test]
    fn a_chain_resolves_in_order() {
        let cfg = config(
            r#"{"id": "max", "type": "text", "cluster": "c", "fallbacks": ["pro", "flash"]},
               {"id": "pro", "type": "text", "cluster": "c", "fallbacks": ["flash"]},
               {"id": "flash", "type": "text", "cluster": "c"}"#,
        )
        .unwrap();
        assert_eq!(cfg.model("max").unwrap().fallbacks, vec![1, 2]);
        assert_eq!(cfg.model("pro").unwrap().fallbacks, vec![2]);
        assert_eq!(cfg.model("flash").unwrap().fallbacks, Vec::<usize>::new());
    }

    #[test]
    fn invalid_lists_are_refused_by_name() {
        let cases = [
            (
                r#"{"id": "a", "type": "text", "cluster": "c", "fallbacks": ["b"]},
                   {"id": "b", "type": "text", "cluster": "c", "fallbacks": ["a"]}"#,
                "models[1].fallbacks: 'b' falls back to 'a', which leads back to 'b' (fallbacks must not form a cycle)",
            ),
            (
                r#"{"id": "a", "type": "text", "cluster": "c", "fallbacks": ["b"]},
                   {"id": "b", "type": "text", "cluster": "c", "fallbacks": ["c"]},
                   {"id": "c", "type": "text", "cluster": "c", "fallbacks": ["a"]}"#,
                "models[2].fallbacks: 'c' falls back to 'a', which leads back to 'c' (fallbacks must not form a cycle)",
            ),
            (
                r#"{"id": "a", "type": "text", "cluster": "c", "fallbacks": ["a"]}"#,
                "models[0].fallbacks[0]: a model cannot fall back to itself",
            ),
            (
                r#"{"id": "a", "type": "text", "cluster": "c", "fallbacks": ["zz"]}"#,
                "models[0].fallbacks[0]: no model named 'zz' in 'models'",
            ),
            (
                r#"{"id": "a", "type": "text", "cluster": "c", "fallbacks": ["b", "b"]},
                   {"id": "b", "type": "text", "cluster": "c"}"#,
                "models[0].fallbacks[1]: 'b' is listed twice",
            ),
            (
                r#"{"id": "a", "type": "text", "cluster": "c", "fallbacks": ["b"]},
                   {"id": "b", "type": "image", "cluster": "c"}"#,
                "models[0].fallbacks[0]: 'b' is not a text model",
            ),
            (
                r#"{"id": "a", "type": "image", "cluster": "c", "fallbacks": ["b"]},
                   {"id": "b", "type": "image", "cluster": "c"}"#,
                "models[0].fallbacks: only text models fail over",
            ),
            (
                r#"{"id": "a", "type": "text", "cluster": "c", "fallbacks": ["b"]},
                   {"id": "b", "type": "text", "cluster": "c", "sandbox": true}"#,
                "models[0].fallbacks[0]: 'b' and 'a' must both be sandbox models or neither",
            ),
            (
                r#"{"id": "a", "type": "text", "cluster": "c", "fallbacks": ["b", "c", "d", "e", "f"]}"#,
                "models[0].fallbacks: at most 4 models",
            ),
        ];
        for (models, want) in cases {
            assert_eq!(config(models).unwrap_err(), want, "{models}");
        }
    }

    #[test]
    fn cycles_are_found_and_chains_are_not_cycles() {
        assert_eq!(first_cycle(&[vec![1, 2], vec![2], vec![]]), None);
        assert_eq!(first_cycle(&[vec![1], vec![0]]), Some((1, 0)));
        assert_eq!(first_cycle(&[vec![], vec![2], vec![3], vec![1]]), Some((3, 1)));
        // A diamond is not a cycle.
        assert_eq!(first_cycle(&[vec![1, 2], vec![3], vec![3], vec![]]), None);
    }
}
