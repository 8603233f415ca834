//! Objectives for activation maximization, as in Lucid: a neuron (one position of a
//! channel), a channel (its spatial mean), a logit, a direction in a site's unit space,
//! and their sums, scalings and negatives (`a + b`, `2.0 * a`, `a - b`, `-a`).
//!
//! Every objective of this algebra is a *linear functional* of the activations at one or
//! more sites. A batch gives each row its own objective (one unit per row); the batch is
//! compiled into one dense weight tensor per site, so evaluating all rows costs one
//! elementwise product and a row sum per site, whatever the objectives are.

use anyhow::{bail, Result};
use burn::tensor::{Device, Tensor, TensorData};
use insilico_engine::{Hooks, Plan, Recording, Shape};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::{Add, Mul, Neg, Sub};

/// What one image should drive up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Objective {
    /// One unit at one spatial position (`None`: the centre of the map). On a vector site
    /// the position is ignored.
    Neuron {
        site: String,
        unit: usize,
        position: Option<(usize, usize)>,
    },
    /// The spatial mean of a channel (the unit's value on a vector site).
    Channel {
        site: String,
        unit: usize,
    },
    /// The dot product of a direction with the site's per-unit responses (channels
    /// averaged over space).
    Direction {
        site: String,
        direction: Vec<f32>,
    },
    Sum(Vec<Objective>),
    Scaled(f32, Box<Objective>),
}

impl Objective {
    pub fn neuron(site: &str, unit: usize) -> Self {
        Objective::Neuron {
            site: site.into(),
            unit,
            position: None,
        }
    }

    pub fn neuron_at(site: &str, unit: usize, y: usize, x: usize) -> Self {
        Objective::Neuron {
            site: site.into(),
            unit,
            position: Some((y, x)),
        }
    }

    pub fn channel(site: &str, unit: usize) -> Self {
        Objective::Channel {
            site: site.into(),
            unit,
        }
    }

    /// A class score before the softmax (the `logits` site).
    pub fn logit(class: usize) -> Self {
        Objective::Channel {
            site: "logits".into(),
            unit: class,
        }
    }

    pub fn direction(site: &str, direction: Vec<f32>) -> Self {
        Objective::Direction {
            site: site.into(),
            direction,
        }
    }

    /// Sites this objective reads.
    pub fn sites(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.visit(&mut |o| match o {
            Objective::Neuron { site, .. }
            | Objective::Channel { site, .. }
            | Objective::Direction { site, .. }
                if !out.contains(site) =>
            {
                out.push(site.clone())
            }
            _ => {}
        });
        out
    }

    fn visit(&self, f: &mut impl FnMut(&Objective)) {
        f(self);
        match self {
            Objective::Sum(parts) => parts.iter().for_each(|p| p.visit(f)),
            Objective::Scaled(_, inner) => inner.visit(f),
            _ => {}
        }
    }

    /// Adds `scale` times this functional's weights into `out` (site -> weights over one
    /// example's flattened activation).
    fn accumulate(
        &self,
        plan: &Plan,
        scale: f32,
        out: &mut BTreeMap<String, Vec<f32>>,
    ) -> Result<()> {
        fn weights<'a>(
            plan: &Plan,
            out: &'a mut BTreeMap<String, Vec<f32>>,
            site: &str,
        ) -> Result<(Shape, &'a mut Vec<f32>)> {
            let shape = plan.shape_at(site)?;
            let w = out
                .entry(site.to_string())
                .or_insert_with(|| vec![0.0; shape.numel()]);
            Ok((shape, w))
        }
        match self {
            Objective::Neuron {
                site,
                unit,
                position,
            } => {
                let (shape, w) = weights(plan, out, site)?;
                check_unit(site, *unit, shape)?;
                match shape {
                    Shape::Map { h, w: width, .. } => {
                        let (y, x) = position.unwrap_or((h / 2, width / 2));
                        if y >= h || x >= width {
                            bail!(
                                "position ({y}, {x}) is outside the {h}x{width} maps of `{site}`"
                            );
                        }
                        w[(unit * h + y) * width + x] += scale;
                    }
                    Shape::Flat(_) => w[*unit] += scale,
                }
            }
            Objective::Channel { site, unit } => {
                let (shape, w) = weights(plan, out, site)?;
                check_unit(site, *unit, shape)?;
                let per = shape.positions();
                for v in &mut w[unit * per..(unit + 1) * per] {
                    *v += scale / per as f32;
                }
            }
            Objective::Direction { site, direction } => {
                let (shape, w) = weights(plan, out, site)?;
                if direction.len() != shape.units() {
                    bail!(
                        "direction has {} components but `{site}` has {} units",
                        direction.len(),
                        shape.units()
                    );
                }
                let per = shape.positions();
                for (u, d) in direction.iter().enumerate() {
                    for v in &mut w[u * per..(u + 1) * per] {
                        *v += scale * d / per as f32;
                    }
                }
            }
            Objective::Sum(parts) => {
                for p in parts {
                    p.accumulate(plan, scale, out)?;
                }
            }
            Objective::Scaled(s, inner) => inner.accumulate(plan, scale * s, out)?,
        }
        Ok(())
    }
}

fn check_unit(site: &str, unit: usize, shape: Shape) -> Result<()> {
    if unit >= shape.units() {
        bail!(
            "unit {unit} does not exist: `{site}` has {} units",
            shape.units()
        );
    }
    Ok(())
}

impl Add for Objective {
    type Output = Objective;
    fn add(self, rhs: Objective) -> Objective {
        let mut parts = match self {
            Objective::Sum(p) => p,
            o => vec![o],
        };
        match rhs {
            Objective::Sum(p) => parts.extend(p),
            o => parts.push(o),
        }
        Objective::Sum(parts)
    }
}

impl Mul<f32> for Objective {
    type Output = Objective;
    fn mul(self, rhs: f32) -> Objective {
        match self {
            Objective::Scaled(s, inner) => Objective::Scaled(s * rhs, inner),
            o => Objective::Scaled(rhs, Box::new(o)),
        }
    }
}

impl Mul<Objective> for f32 {
    type Output = Objective;
    fn mul(self, rhs: Objective) -> Objective {
        rhs * self
    }
}

impl Neg for Objective {
    type Output = Objective;
    fn neg(self) -> Objective {
        self * -1.0
    }
}

impl Sub for Objective {
    type Output = Objective;
    fn sub(self, rhs: Objective) -> Objective {
        self + (-rhs)
    }
}

/// A batch of objectives, one per row, compiled to one weight tensor `[rows, numel]` per
/// site.
#[derive(Clone, Debug)]
pub struct BatchObjective {
    pub rows: usize,
    pub weights: Vec<(String, Tensor<2>)>,
    /// The deepest site read: the forward pass stops after it.
    pub last_site: String,
}

impl BatchObjective {
    pub fn new(rows: &[Objective], plan: &Plan, device: &Device) -> Result<Self> {
        if rows.is_empty() {
            bail!("no objectives to optimize");
        }
        let mut per_row = Vec::with_capacity(rows.len());
        let mut sites: Vec<String> = Vec::new();
        for o in rows {
            let mut w = BTreeMap::new();
            o.accumulate(plan, 1.0, &mut w)?;
            for s in w.keys() {
                if !sites.contains(s) {
                    sites.push(s.clone());
                }
            }
            per_row.push(w);
        }
        let mut weights = Vec::new();
        for site in &sites {
            let numel = plan.shape_at(site)?.numel();
            let mut dense = vec![0.0f32; rows.len() * numel];
            for (r, w) in per_row.iter().enumerate() {
                if let Some(v) = w.get(site) {
                    dense[r * numel..(r + 1) * numel].copy_from_slice(v);
                }
            }
            let t = Tensor::from_data(TensorData::new(dense, [rows.len(), numel]), device);
            weights.push((site.clone(), t));
        }
        let last_site = sites
            .iter()
            .max_by_key(|s| plan.site_index(s).unwrap_or(0))
            .cloned()
            .expect("at least one site");
        Ok(Self {
            rows: rows.len(),
            weights,
            last_site,
        })
    }

    /// Hooks that record every site read and stop after the deepest.
    pub fn hooks(&self, extra: &[String]) -> Hooks {
        let mut sites: Vec<String> = self.weights.iter().map(|(s, _)| s.clone()).collect();
        sites.extend(extra.iter().cloned());
        Hooks::new().record(&sites).stop_after(&self.last_site)
    }

    /// Each row's objective `[rows]`, from a recording made with [`BatchObjective::hooks`].
    pub fn evaluate(&self, rec: &Recording) -> Tensor<1> {
        let mut total: Option<Tensor<2>> = None;
        for (site, w) in &self.weights {
            let act = rec.get(site).clone().flatten();
            let term = (act * w.clone()).sum_dim(1);
            total = Some(match total {
                Some(t) => t + term,
                None => term,
            });
        }
        total.expect("at least one site").reshape([self.rows])
    }
}
