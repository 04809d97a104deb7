//! Corpus -> labelled feature matrices with a progress bar: the binary's side of
//! `fedser_client::dataset` (which holds the normalisation and what model files record).

use std::path::Path;

use anyhow::{Context, Result};
use fedser_audio::FrontEndConfig;
use fedser_data::cache::FeatureCache;
use fedser_data::loaders;

pub use fedser_client::dataset::{
    Featured, NormRecord, apply_record, by_speaker, examples, normalise, speakers,
};

use crate::cli::CorpusArgs;
use crate::progress;

/// The feature cache folder, opened (created when missing); `None` without one.
pub fn open_cache(dir: Option<&Path>) -> Result<Option<FeatureCache>> {
    dir.map(FeatureCache::open)
        .transpose()
        .context("cannot open the feature cache")
}

/// Loads the corpus and extracts (or reads cached) features with `front`.
pub fn load(
    args: &CorpusArgs,
    front: &FrontEndConfig,
    cache: Option<&Path>,
    quiet: bool,
) -> Result<Featured> {
    load_speakers(args, &[], front, cache, quiet)
}

/// [`load`] restricted to `speakers` (all when empty; an unknown name is an error).
pub fn load_speakers(
    args: &CorpusArgs,
    speakers: &[String],
    front: &FrontEndConfig,
    cache: Option<&Path>,
    quiet: bool,
) -> Result<Featured> {
    let mut corpus = loaders::load(args.corpus, args.data.as_deref(), &args.load_options())?;
    fedser_client::dataset::keep_speakers(&mut corpus, speakers)?;
    let cache = open_cache(cache)?;
    let bar = progress::bar(corpus.len() as u64, "features", quiet);
    let featured =
        fedser_client::dataset::featurise(corpus, front, cache.as_ref(), &|| bar.inc(1))?;
    bar.finish_and_clear();
    Ok(featured)
}
