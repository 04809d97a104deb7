//! Each loader on a small corpus generated here in the real layout (names, folders, label
//! files), including wrong names, missing label files, unreadable audio and empty corpora.

use std::path::Path;

use fedser_audio::FrontEndConfig;
use fedser_core::Emotion;
use fedser_data::Gender;
use fedser_data::cache::{FeatureCache, extract_corpus};
use fedser_data::loaders::{CorpusKind, CremaLabels, IemocapOptions, LoadOptions, load};

/// A 0.2 s 16 kHz 16-bit WAV with a little speech-like content.
fn wav(path: &Path, seed: u64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for s in fedser_audio::synth::speech_like(16000, 0.2, seed) {
        w.write_sample((s * 32767.0) as i16).unwrap();
    }
    w.finalize().unwrap();
}

fn opts() -> LoadOptions {
    LoadOptions::default()
}

#[test]
fn ravdess_layout() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    for (actor, emotions) in [(1, ["01", "03", "05", "02"]), (2, ["04", "06", "07", "08"])] {
        for (k, e) in emotions.iter().enumerate() {
            wav(
                &r.join(format!(
                    "Actor_{actor:02}/03-01-{e}-01-01-0{}-{actor:02}.wav",
                    k % 2 + 1
                )),
                k as u64,
            );
        }
    }
    wav(&r.join("Actor_01/03-02-05-01-01-01-01.wav"), 9); // song
    wav(&r.join("Actor_01/readme.wav"), 9);
    wav(&r.join("other/03-01-05-01-01-01-03.wav"), 9); // not an Actor_ folder: ignored
    let c = load(CorpusKind::Ravdess, Some(r), &opts()).unwrap();
    assert_eq!(c.len(), 5);
    assert_eq!(c.per_emotion(), [1, 1, 1, 1, 1]);
    let speakers = c.speakers();
    assert_eq!(speakers.len(), 2);
    assert_eq!(
        (speakers[0].speaker.as_str(), speakers[0].gender),
        ("ravdess_01", Some(Gender::Male))
    );
    assert_eq!(speakers[1].gender, Some(Gender::Female));
    assert_eq!(c.skipped["label calm"], 1);
    assert_eq!(c.skipped["label disgust"], 1);
    assert_eq!(c.skipped["label surprised"], 1);
    assert_eq!(c.skipped["song (vocal channel 02)"], 1);
    assert_eq!(c.skipped["unparsable file name"], 1);
}

#[test]
fn emodb_layout() {
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path().join("wav");
    for name in [
        "03a01Wa", "03a02Nc", "08a01Fa", "09b03Ta", "16b10Ab", "08a02La", "10a01Ea", "99a01Wa",
        "junk",
    ] {
        wav(&w.join(format!("{name}.wav")), 1);
    }
    let c = load(CorpusKind::Emodb, Some(dir.path()), &opts()).unwrap();
    assert_eq!(c.per_emotion(), [1, 1, 1, 1, 1]);
    assert_eq!(c.speakers().len(), 4); // 03, 08, 09, 16
    let u = c.utterances.iter().find(|u| u.id == "08a01Fa").unwrap();
    assert_eq!(
        (u.speaker.as_str(), u.gender, u.emotion),
        ("emodb_08", Some(Gender::Female), Emotion::Happy)
    );
    assert_eq!(c.skipped["label boredom"], 1);
    assert_eq!(c.skipped["label disgust"], 1);
    assert_eq!(c.skipped["unknown speaker"], 1);
    assert_eq!(c.skipped["unparsable file name"], 1);
    // The wav/ folder itself is accepted too.
    assert_eq!(load(CorpusKind::Emodb, Some(&w), &opts()).unwrap().len(), 5);
}

#[test]
fn crema_d_layout_with_demographics_and_crowd_labels() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    for name in [
        "1001_DFA_ANG_XX",
        "1001_IEO_HAP_LO",
        "1002_IEO_SAD_HI",
        "1002_TIE_NEU_XX",
        "1002_IEO_DIS_MD",
        "1003_IEO_FEA_MD",
        "bad_name",
    ] {
        wav(&r.join(format!("AudioWAV/{name}.wav")), 2);
    }
    std::fs::write(
        r.join("VideoDemographics.csv"),
        "\"ActorID\",\"Age\",\"Sex\",\"Race\",\"Ethnicity\"\n1001,51,\"Male\",\"Caucasian\",\"Not Hispanic\"\n1002,21,\"Female\",\"Caucasian\",\"Not Hispanic\"\n",
    )
    .unwrap();
    let c = load(CorpusKind::CremaD, Some(r), &opts()).unwrap();
    assert_eq!(c.per_emotion(), [1, 1, 1, 1, 1]);
    let by_id = |id: &str| c.utterances.iter().find(|u| u.id == id).unwrap().clone();
    assert_eq!(by_id("1001_DFA_ANG_XX").gender, Some(Gender::Male));
    assert_eq!(by_id("1002_IEO_SAD_HI").speaker, "crema_1002");
    assert_eq!(by_id("1003_IEO_FEA_MD").gender, None); // not in the demographics file
    assert_eq!(c.skipped["label disgust"], 1);
    assert_eq!(c.skipped["unparsable file name"], 1);

    // Crowd-sourced voice labels: a tie has no majority; a clip with no row is skipped.
    let voice = LoadOptions {
        crema_labels: CremaLabels::Voice,
        ..opts()
    };
    let err = load(CorpusKind::CremaD, Some(r), &voice).unwrap_err();
    assert!(err.to_string().contains("summaryTable.csv"), "{err}");
    std::fs::write(
        r.join("summaryTable.csv"),
        "\"\",\"FileName\",\"VoiceVote\",\"VoiceLevel\"\n\"1\",\"1001_DFA_ANG_XX\",\"N\",\"60\"\n\"2\",\"1001_IEO_HAP_LO\",\"H\",\"50\"\n\"3\",\"1002_IEO_SAD_HI\",\"N:S\",\"50\"\n\"4\",\"1002_IEO_DIS_MD\",\"A\",\"70\"\n\"5\",\"1003_IEO_FEA_MD\",\"D\",\"70\"\n",
    )
    .unwrap();
    let c = load(CorpusKind::CremaD, Some(r), &voice).unwrap();
    assert_eq!(c.per_emotion(), [1, 1, 1, 0, 0]); // ANG clip heard as neutral, DIS clip heard as angry
    assert_eq!(c.skipped["voice vote without majority"], 1);
    assert_eq!(c.skipped["voice vote disgust"], 1);
    assert_eq!(c.skipped["no crowd-sourced label"], 1);
}

#[test]
fn iemocap_layout() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let s1 = r.join("Session1");
    for u in [
        "Ses01F_impro01_F000",
        "Ses01F_impro01_M000",
        "Ses01F_impro01_F001",
        "Ses01F_impro01_M001",
        "Ses01F_impro01_F002",
    ] {
        wav(&s1.join(format!("sentences/wav/Ses01F_impro01/{u}.wav")), 3);
    }
    for u in ["Ses01M_script01_1_F000", "Ses01M_script01_1_M000"] {
        wav(
            &s1.join(format!("sentences/wav/Ses01M_script01_1/{u}.wav")),
            3,
        );
    }
    wav(
        &s1.join("sentences/wav/Ses01F_impro02/Ses01F_impro02_F000.wav"),
        3,
    ); // no label file
    std::fs::create_dir_all(s1.join("dialog/EmoEvaluation")).unwrap();
    std::fs::write(
        s1.join("dialog/EmoEvaluation/Ses01F_impro01.txt"),
        "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n\
         [6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]\n\
         C-E2:\tNeutral;\t()\n\
         [10.01 - 11.36]\tSes01F_impro01_M000\texc\t[3.5, 3.5, 3.0]\n\
         [12.0 - 13.0]\tSes01F_impro01_F001\tfru\t[2.0, 3.5, 3.0]\n\
         [14.0 - 15.0]\tSes01F_impro01_M001\tang\t[1.5, 4.0, 4.0]\n\
         [16.0 - 17.0]\tSes01F_impro01_F002\txxx\t[2.0, 2.0, 2.0]\n",
    )
    .unwrap();
    std::fs::write(
        s1.join("dialog/EmoEvaluation/Ses01M_script01_1.txt"),
        "[1.0 - 2.0]\tSes01M_script01_1_F000\tsad\t[2, 2, 2]\n[3.0 - 4.0]\tSes01M_script01_1_M000\tfea\t[2, 4, 2]\n",
    )
    .unwrap();
    let c = load(CorpusKind::Iemocap, Some(r), &opts()).unwrap();
    assert_eq!(c.per_emotion(), [1, 1, 1, 1, 1]); // exc merged into happy
    let speakers: Vec<_> = c
        .speakers()
        .into_iter()
        .map(|s| (s.speaker, s.gender))
        .collect();
    assert_eq!(
        speakers,
        vec![
            ("iemocap_Ses01_F".to_string(), Some(Gender::Female)),
            ("iemocap_Ses01_M".to_string(), Some(Gender::Male))
        ]
    );
    assert_eq!(c.skipped["label fru"], 1);
    assert_eq!(c.skipped["label xxx"], 1);
    assert_eq!(c.skipped["no label"], 1);

    let strict = LoadOptions {
        iemocap: IemocapOptions {
            merge_excited: false,
            improvised_only: true,
        },
        ..opts()
    };
    let c = load(CorpusKind::Iemocap, Some(r), &strict).unwrap();
    assert_eq!(c.per_emotion(), [1, 0, 1, 0, 0]);
    assert_eq!(c.skipped["scripted dialog"], 2);
    assert_eq!(c.skipped["label exc"], 1);

    let empty = tempfile::tempdir().unwrap();
    let err = load(CorpusKind::Iemocap, Some(empty.path()), &opts()).unwrap_err();
    assert!(err.to_string().contains("Session"), "{err}");
}

#[test]
fn manifest_csv() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    wav(&r.join("audio/a.wav"), 1);
    wav(&r.join("audio/b.wav"), 2);
    wav(&r.join("audio/c.wav"), 3);
    std::fs::write(
        r.join("manifest.csv"),
        "path,label,speaker,gender\naudio/a.wav,angry,alice,f\naudio/b.wav,Sad,bob,\n# a comment\naudio/c.wav,calm,bob,m\n",
    )
    .unwrap();
    let c = load(CorpusKind::Manifest, Some(r), &opts()).unwrap();
    assert_eq!(c.per_emotion(), [0, 0, 1, 1, 0]);
    assert_eq!(c.skipped["label calm"], 1);
    let a = c.utterances.iter().find(|u| u.speaker == "alice").unwrap();
    assert_eq!(a.gender, Some(Gender::Female));
    match &a.source {
        fedser_data::AudioSource::File(p) => assert!(p.ends_with("audio/a.wav") && p.exists()),
        other => panic!("{other:?}"),
    }
    std::fs::write(r.join("bad.csv"), "audio/a.wav,angry,alice,x\n").unwrap();
    let err = load(CorpusKind::Manifest, Some(&r.join("bad.csv")), &opts()).unwrap_err();
    assert!(
        err.to_string().contains("bad.csv:1") && err.to_string().contains("gender"),
        "{err}"
    );
    std::fs::write(r.join("short.csv"), "audio/a.wav,angry\n").unwrap();
    let err = load(CorpusKind::Manifest, Some(&r.join("short.csv")), &opts()).unwrap_err();
    assert!(
        err.to_string().contains("expected path,label,speaker"),
        "{err}"
    );
}

#[test]
fn empty_and_missing_corpora_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    for kind in [CorpusKind::Ravdess, CorpusKind::Emodb, CorpusKind::CremaD] {
        let err = load(kind, Some(dir.path()), &opts())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no usable"), "{kind:?}: {err}");
    }
    let err = load(
        CorpusKind::Ravdess,
        Some(&dir.path().join("missing")),
        &opts(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("missing"));
    let err = load(CorpusKind::Ravdess, None, &opts()).unwrap_err();
    assert!(err.to_string().contains("--data"));
}

#[test]
fn unreadable_audio_is_reported_per_utterance_and_the_cache_is_keyed_by_content_and_config() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("ravdess");
    wav(&r.join("Actor_01/03-01-05-01-01-01-01.wav"), 1);
    wav(&r.join("Actor_01/03-01-04-01-01-01-01.wav"), 2);
    std::fs::write(
        r.join("Actor_01/03-01-03-01-01-01-01.wav"),
        b"RIFF....WAVE but broken",
    )
    .unwrap();
    let c = load(CorpusKind::Ravdess, Some(&r), &opts()).unwrap();
    assert_eq!(c.len(), 3);
    let cache = FeatureCache::open(dir.path().join("cache")).unwrap();
    let cfg = FrontEndConfig::default();
    let first = extract_corpus(&c, &cfg, Some(&cache), &|| {}).unwrap();
    let failures: Vec<String> = first
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
        .collect();
    assert_eq!(failures.len(), 1);
    assert!(
        failures[0].contains("03-01-03-01-01-01-01"),
        "{}",
        failures[0]
    );
    // 0.2 s at 16 kHz, 20 ms frames: 10 frames of 13 coefficients.
    let ok: Vec<_> = first.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert!(ok.iter().all(|m| m.frames() == 10 && m.coeffs() == 13));

    // Tamper with the cached entries: a second extraction must read them (cache hit) ...
    let stored: Vec<_> = walk(cache.dir());
    assert_eq!(stored.len(), 2);
    let fake = fedser_core::FeatureMatrix::new(1, 13, vec![42.0; 13]).unwrap();
    for path in &stored {
        let key = path.file_stem().unwrap().to_str().unwrap().to_string();
        cache.put(&key, &fake).unwrap();
    }
    let second = extract_corpus(&c, &cfg, Some(&cache), &|| {}).unwrap();
    assert_eq!(
        second
            .iter()
            .filter(|r| matches!(r, Ok(m) if m.as_slice()[0] == 42.0))
            .count(),
        2
    );
    // ... while another configuration, or changed audio, misses and recomputes.
    let other = FrontEndConfig {
        denoise: !cfg.denoise,
        ..cfg.clone()
    };
    let third = extract_corpus(&c, &other, Some(&cache), &|| {}).unwrap();
    let recomputed: Vec<_> = third.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(recomputed.len(), 2);
    assert!(
        recomputed
            .iter()
            .all(|m| m.frames() > 1 && m.as_slice()[0] != 42.0)
    );
    wav(&r.join("Actor_01/03-01-05-01-01-01-01.wav"), 77);
    let fourth = extract_corpus(&c, &cfg, Some(&cache), &|| {}).unwrap();
    assert_eq!(
        fourth
            .iter()
            .filter(|r| matches!(r, Ok(m) if m.as_slice()[0] == 42.0))
            .count(),
        1
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
