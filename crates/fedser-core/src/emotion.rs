use std::fmt;
use std::str::FromStr;

/// One of the five emotion classes fedser recognises.
///
/// The discriminant is the class index used by models and confusion matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Emotion {
    Neutral = 0,
    Happy = 1,
    Angry = 2,
    Sad = 3,
    Fear = 4,
}

/// A label that is not one of the five classes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown emotion {0:?} (expected one of neutral, happy, angry, sad, fear)")]
pub struct UnknownEmotion(pub String);

impl Emotion {
    /// All classes in the canonical order (index order).
    pub const ALL: [Emotion; 5] = [
        Emotion::Neutral,
        Emotion::Happy,
        Emotion::Angry,
        Emotion::Sad,
        Emotion::Fear,
    ];

    /// Number of classes.
    pub const COUNT: usize = 5;

    /// Class index in `0..COUNT`.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The class with this index, if any.
    pub fn from_index(index: usize) -> Option<Emotion> {
        Self::ALL.get(index).copied()
    }

    /// Lower-case canonical name, as written in files.
    pub fn name(self) -> &'static str {
        match self {
            Emotion::Neutral => "neutral",
            Emotion::Happy => "happy",
            Emotion::Angry => "angry",
            Emotion::Sad => "sad",
            Emotion::Fear => "fear",
        }
    }
}

impl fmt::Display for Emotion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Emotion {
    type Err = UnknownEmotion;

    /// Accepts the canonical names and the common short forms (`neu`, `hap`, `ang`, `fea`,
    /// `fearful`, `anger`, ...), case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "neutral" | "neu" => Ok(Emotion::Neutral),
            "happy" | "hap" | "happiness" | "joy" => Ok(Emotion::Happy),
            "angry" | "ang" | "anger" => Ok(Emotion::Angry),
            "sad" | "sadness" => Ok(Emotion::Sad),
            "fear" | "fea" | "fearful" => Ok(Emotion::Fear),
            _ => Err(UnknownEmotion(s.to_string())),
        }
    }
}

/// Serialised as its lower-case name.
impl serde::Serialize for Emotion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Emotion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_order_is_the_canonical_order() {
        let names: Vec<_> = Emotion::ALL.iter().map(|e| e.name()).collect();
        assert_eq!(names, ["neutral", "happy", "angry", "sad", "fear"]);
        for (i, e) in Emotion::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
            assert_eq!(Emotion::from_index(i), Some(*e));
        }
        assert_eq!(Emotion::from_index(5), None);
    }

    #[test]
    fn parses_names_and_short_forms() {
        for e in Emotion::ALL {
            assert_eq!(e.name().parse::<Emotion>().unwrap(), e);
            assert_eq!(e.name().to_uppercase().parse::<Emotion>().unwrap(), e);
        }
        assert_eq!("fearful".parse::<Emotion>().unwrap(), Emotion::Fear);
        assert_eq!("ANG".parse::<Emotion>().unwrap(), Emotion::Angry);
        let err = "disgust".parse::<Emotion>().unwrap_err();
        assert!(err.to_string().contains("disgust"));
    }
}
