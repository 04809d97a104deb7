//! A `ParamSet` as one flat vector (in parameter order) and back: aggregation rules and server
//! optimisers work coordinate-wise and do not care about tensor boundaries.

use fedser_core::{ParamError, ParamSet, ParamTensor};

/// All values of `p`, tensor after tensor.
pub fn flatten(p: &ParamSet) -> Vec<f32> {
    let mut v = Vec::with_capacity(p.num_values());
    for (_, t) in p.iter() {
        v.extend_from_slice(&t.data);
    }
    v
}

/// A set with `layout`'s names and shapes holding `values`.
pub fn unflatten(layout: &ParamSet, values: &[f32]) -> Result<ParamSet, ParamError> {
    if values.len() != layout.num_values() {
        return Err(ParamError::Shape(format!(
            "{} values do not fill a layout of {}",
            values.len(),
            layout.num_values()
        )));
    }
    let mut out = ParamSet::new();
    let mut at = 0;
    for (name, t) in layout.iter() {
        let n = t.data.len();
        out.push(
            name,
            ParamTensor::new(t.shape.clone(), values[at..at + n].to_vec())?,
        )?;
        at += n;
    }
    Ok(out)
}

/// `a - b`, element by element; the layouts must match.
pub fn difference(a: &ParamSet, b: &ParamSet) -> Result<ParamSet, ParamError> {
    b.check_same_layout(a)?;
    let mut out = a.clone();
    for (t, (_, u)) in out.tensors_mut().zip(b.iter()) {
        for (x, y) in t.data.iter_mut().zip(&u.data) {
            *x -= y;
        }
    }
    Ok(out)
}

/// For each flat coordinate, whether it belongs to a tensor named in `names`.
pub fn coordinate_mask(layout: &ParamSet, is_selected: impl Fn(&str) -> bool) -> Vec<bool> {
    let mut mask = Vec::with_capacity(layout.num_values());
    for (name, t) in layout.iter() {
        mask.extend(std::iter::repeat_n(is_selected(name), t.data.len()));
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(values: &[(&str, Vec<usize>, Vec<f32>)]) -> ParamSet {
        let mut p = ParamSet::new();
        for (n, s, d) in values {
            p.push(*n, ParamTensor::new(s.clone(), d.clone()).unwrap())
                .unwrap();
        }
        p
    }

    #[test]
    fn flatten_round_trips_and_differences() {
        let a = set(&[
            ("w", vec![2, 2], vec![1., 2., 3., 4.]),
            ("b", vec![1], vec![5.]),
        ]);
        let flat = flatten(&a);
        assert_eq!(flat, vec![1., 2., 3., 4., 5.]);
        assert_eq!(unflatten(&a, &flat).unwrap(), a);
        assert!(unflatten(&a, &flat[..4]).is_err());
        let b = set(&[
            ("w", vec![2, 2], vec![1., 1., 1., 1.]),
            ("b", vec![1], vec![1.]),
        ]);
        assert_eq!(
            flatten(&difference(&a, &b).unwrap()),
            vec![0., 1., 2., 3., 4.]
        );
        let wrong = set(&[
            ("w", vec![4], vec![1., 1., 1., 1.]),
            ("b", vec![1], vec![1.]),
        ]);
        assert!(difference(&a, &wrong).is_err());
        assert_eq!(
            coordinate_mask(&a, |n| n == "b"),
            vec![false, false, false, false, true]
        );
    }
}
