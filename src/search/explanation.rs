//! Why the verifier scored a pair as it did, as facts first and words second. The verifier
//! records what it found (a [`Reading`] of the pair, a [`Finding`] per signal); the sentences
//! are worded from them in each language, so the API and the CLI give English while the
//! court's report speaks the reader's language.

use serde::Serialize;

use super::local::{LocalEvidence, MatchGroup};
use super::palette::InkPair;
use crate::features::Dihedral;
use crate::lang::Lang;

/// Why the verifier scored a pair as it did.
#[derive(Clone, Debug, Serialize)]
pub struct Explanation {
    /// One sentence for people, in English: [`Reading::sentence`] of `reading`.
    pub summary: String,
    /// What the summary says, for a page to word in its own language.
    pub reading: Reading,
    /// How the first print must be turned or mirrored to line up with the second, as a whole.
    pub orientation: Dihedral,
    pub signals: Vec<Signal>,
    /// The groups of local matches, one per transform found.
    pub local: LocalEvidence,
    /// Which query ink lies where each reference ink lies, where local features match: a
    /// recolouring's palette mapping.
    pub palette: Vec<InkPair>,
}

/// One signal's view of a pair.
#[derive(Clone, Debug, Serialize)]
pub struct Signal {
    pub name: &'static str,
    /// This signal's similarity in [0, 1].
    pub similarity: f32,
    /// Whether this signal alone reaches the copy threshold.
    pub fired: bool,
    /// `finding` in English.
    pub detail: String,
    pub finding: Finding,
}

impl Signal {
    pub fn new(name: &'static str, similarity: f32, fired: bool, finding: Finding) -> Signal {
        Signal {
            name,
            similarity,
            fired,
            detail: finding.sentence(Lang::En),
            finding,
        }
    }
}

/// How one group of local matches moved: the query mirrored or not, then turned and scaled.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Transform {
    pub mirrored: bool,
    pub rotation_degrees: f32,
    pub scale: f32,
}

impl Transform {
    pub(super) fn of(group: &MatchGroup) -> Transform {
        Transform {
            mirrored: group.mirrored,
            rotation_degrees: group.rotation_degrees,
            scale: group.scale,
        }
    }

    fn words(self, lang: Lang) -> String {
        let (degrees, scale) = (self.rotation_degrees, self.scale);
        match (lang, self.mirrored) {
            (Lang::En, true) => format!("mirrored, turned {degrees:.0}°, scaled ×{scale:.2}"),
            (Lang::En, false) => format!("turned {degrees:.0}°, scaled ×{scale:.2}"),
            (Lang::Zh, true) => format!("镜像、旋转 {degrees:.0}°、缩放 ×{scale:.2}"),
            (Lang::Zh, false) => format!("旋转 {degrees:.0}°、缩放 ×{scale:.2}"),
        }
    }
}

/// What makes the pair a copy or not, as the summary tells it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reading {
    /// Not a copy: neither view reaches the bar.
    NotFound,
    /// The whole print matches, the query in this orientation.
    WholePrint { orientation: Dihedral },
    /// Both prints fold into the same repeat unit: the same repeat, through another window, at
    /// another size, turned or skewed.
    SameRepeat { correlation: f32 },
    /// The whole print resembles the reference and some parts match: neither alone is
    /// enough, both together are.
    Together {
        orientation: Dihedral,
        local_matches: usize,
    },
    /// Local features match under one transform: the design moved as one.
    OneTransform {
        matches: usize,
        transform: Transform,
    },
    /// Local features match in several groups, one of whose transforms lines up the whole
    /// design (a symmetric motif also matches itself turned or mirrored).
    WholeDesign {
        local_matches: usize,
        carried: usize,
        transform: Transform,
    },
    /// Local features match in several groups that no one placement lines up: motifs cut out
    /// and placed anew.
    PlacedAnew { local_matches: usize, groups: usize },
}

impl Reading {
    /// The summary of a copy led by its parts, from its groups of local matches and the one
    /// that carries the whole design, if any.
    pub(super) fn of_parts(evidence: &LocalEvidence, carrying: Option<usize>) -> Reading {
        match evidence.groups.as_slice() {
            [one] => Reading::OneTransform {
                matches: one.matches,
                transform: Transform::of(one),
            },
            groups => match carrying.and_then(|i| groups.get(i)) {
                Some(group) => Reading::WholeDesign {
                    local_matches: evidence.consistent_matches,
                    carried: group.matches,
                    transform: Transform::of(group),
                },
                None => Reading::PlacedAnew {
                    local_matches: evidence.consistent_matches,
                    groups: groups.len(),
                },
            },
        }
    }

    pub fn sentence(&self, lang: Lang) -> String {
        let english = lang == Lang::En;
        match *self {
            Reading::NotFound if english => {
                "Neither the whole print nor enough of its parts are found in the reference.".into()
            }
            Reading::NotFound => "参考花型中既找不到整幅图案,也找不到足够多的局部。".into(),
            Reading::WholePrint { orientation } => {
                let turned = orientation_words(orientation, lang);
                if english {
                    format!(
                        "The whole print matches in lightness and in ink edges, the query {turned}."
                    )
                } else {
                    format!("整幅图案在明暗和颜色边界上都相符(被检花型:{turned})。")
                }
            }
            Reading::SameRepeat { correlation } if english => format!(
                "Both prints fold into the same repeat unit (correlation {correlation:.2}): the \
                 same repeat, seen through another window, at another size, turned or skewed."
            ),
            Reading::SameRepeat { correlation } => format!(
                "两幅花型折叠出相同的循环单元(相关系数 {correlation:.2}):同一循环图案,\
                 取景、尺寸、方向或斜度不同。"
            ),
            Reading::Together {
                orientation,
                local_matches,
            } => {
                let turned = orientation_words(orientation, lang);
                if english {
                    format!(
                        "The whole print resembles the reference, the query {turned}, and \
                         {local_matches} local features match: neither is enough alone, both \
                         together are."
                    )
                } else {
                    format!(
                        "整幅图案与参考花型相似(被检花型:{turned}),且有 {local_matches} 个局部特征\
                         相符:单看任何一项都不够,两者合起来足以认定。"
                    )
                }
            }
            Reading::OneTransform { matches, transform } => {
                let moved = transform.words(lang);
                if english {
                    format!(
                        "{matches} local features match under one transform ({moved}): the same \
                         design, cropped, shifted or photographed."
                    )
                } else {
                    format!(
                        "{matches} 个局部特征在同一变换下相符({moved}):同一设计,经过裁剪、平移或拍摄。"
                    )
                }
            }
            Reading::WholeDesign {
                local_matches,
                carried,
                transform,
            } => {
                let moved = transform.words(lang);
                if english {
                    format!(
                        "{local_matches} local features match, {carried} of them under one \
                         transform ({moved}) that carries the whole design: the same design, \
                         cropped, shifted or photographed."
                    )
                } else {
                    format!(
                        "{local_matches} 个局部特征相符,其中 {carried} 个所在的同一变换({moved})\
                         使整幅设计对齐:同一设计,经过裁剪、平移或拍摄。"
                    )
                }
            }
            Reading::PlacedAnew {
                local_matches,
                groups,
            } => {
                if english {
                    format!(
                        "{local_matches} local features match in {groups} groups, each moved its \
                         own way: motifs of the reference cut out and placed anew."
                    )
                } else {
                    format!(
                        "{local_matches} 个局部特征相符,分为 {groups} 组,各组的移动方式各不相同:\
                         参考花型的图案元素被剪下并重新排布。"
                    )
                }
            }
        }
    }
}

/// What one signal measured, as its detail tells it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// A hash signal where one print is plain in that channel.
    PlainChannel,
    /// A hash signal: bits that differ, the query in its best orientation; `lattice_only` where
    /// a fine repeat meets a print that does not fold into its unit, so that the bits were not
    /// counted.
    HashBits {
        differing: u32,
        orientation: Dihedral,
        lattice_only: bool,
    },
    /// The whole-print signal: the mean hash similarity and what unrelated prints reach.
    AboveBackground { mean: f32, background: f32 },
    /// The whole-print signal carried by the structure hash alone: its similarity and what
    /// unrelated prints reach in that channel.
    StructureAboveBackground { similarity: f32, background: f32 },
    /// The local-feature signal: matches, groups, their weight and the half weight.
    LocalMatches {
        consistent: usize,
        by_descriptor: usize,
        groups: usize,
        weight: f32,
        /// The matched parts' same colours above chance, 0 to 1, which raised the weight.
        same_colours: f32,
        half_weight: f32,
        query_kinds: usize,
        reference_keypoints: usize,
    },
    /// The repeat units: their best correlation and what unrelated prints reach.
    RepeatUnit { correlation: f32, background: f32 },
    /// The repeat signal where one print shows no repeat.
    NoRepeat,
    /// The global vector, which only proposes candidates.
    CandidatesOnly,
    /// The mean colours' difference, reported only (equal scores are ordered by the inks).
    ColourDifference { delta_e: f32 },
}

impl Finding {
    pub fn sentence(&self, lang: Lang) -> String {
        let english = lang == Lang::En;
        match *self {
            Finding::PlainChannel if english => {
                "one of the prints is plain in this channel: nothing to compare".into()
            }
            Finding::PlainChannel => "其中一幅在此通道上是素色的:无可比较".into(),
            Finding::HashBits {
                differing,
                orientation,
                lattice_only,
            } => {
                let turned = orientation_words(orientation, lang);
                match (english, lattice_only) {
                    (true, false) => {
                        format!("{differing} of 256 bits differ with the query {turned}")
                    }
                    (true, true) => format!(
                        "{differing} of 256 bits differ with the query {turned}, not counted: a \
                         print that repeats finely shows little but its lattice in these bits, and \
                         the other does not fold into the same repeat unit"
                    ),
                    (false, false) => format!("256 位中有 {differing} 位不同(被检花型:{turned})"),
                    (false, true) => format!(
                        "256 位中有 {differing} 位不同(被检花型:{turned}),不计入:细密重复的花型在\
                         这些位上几乎只反映其网格,而另一幅折叠不出相同的重复单元"
                    ),
                }
            }
            Finding::AboveBackground { mean, background } if english => format!(
                "mean of the lightness and structure hash similarities, {mean:.2}, above the \
                 {background:.2} that unrelated registered prints reach for this query"
            ),
            Finding::AboveBackground { mean, background } => format!(
                "明暗与结构哈希相似度的平均值为 {mean:.2},只计超出 {background:.2} 的部分\
                 (无关的登记花型与此被检花型可达到的相似度)"
            ),
            Finding::StructureAboveBackground {
                similarity,
                background,
            } if english => format!(
                "structure hash similarity alone, {similarity:.2}, above the {background:.2} \
                 that unrelated registered prints reach in that channel for this query: the ink \
                 edges match where the lightness does not, as after a new colourway"
            ),
            Finding::StructureAboveBackground {
                similarity,
                background,
            } => format!(
                "仅结构哈希相似度为 {similarity:.2},只计超出 {background:.2} 的部分(无关的登记\
                 花型在此通道与此被检花型可达到的相似度):明暗不同而色块边界相同,如换色之后"
            ),
            Finding::LocalMatches {
                consistent,
                by_descriptor,
                groups,
                weight,
                same_colours,
                half_weight,
                query_kinds,
                reference_keypoints,
            } => {
                let colours = (same_colours * 100.0).round();
                if english {
                    format!(
                        "{consistent} of {by_descriptor} keypoint matches agree in {groups} \
                         transform groups, weighing {weight:.1} with their colours the same \
                         {colours}% above chance (half weight {half_weight:.1} for \
                         {query_kinds} kinds of query keypoint × {reference_keypoints} reference \
                         keypoints)"
                    )
                } else {
                    format!(
                        "{by_descriptor} 个关键点匹配中有 {consistent} 个在 {groups} 个变换组内\
                         一致,权重 {weight:.1},其颜色相同的程度超出偶然 {colours}%(半数权重 \
                         {half_weight:.1},对应 {query_kinds} 类被检关键点 × \
                         {reference_keypoints} 个参考关键点)"
                    )
                }
            }
            Finding::RepeatUnit {
                correlation,
                background,
            } if english => format!(
                "the repeat units folded from both prints correlate at {correlation:.2} at their \
                 best shift, above the {background:.2} that unrelated registered prints reach"
            ),
            Finding::RepeatUnit {
                correlation,
                background,
            } => format!(
                "两幅花型折叠出的循环单元在最佳平移下的相关系数为 {correlation:.2},只计超出 \
                 {background:.2} 的部分(无关的登记花型可达到的相关系数)"
            ),
            Finding::NoRepeat if english => {
                "one of the prints shows no repeat: nothing to compare".into()
            }
            Finding::NoRepeat => "其中一幅看不出循环:无可比较".into(),
            Finding::CandidatesOnly if english => {
                "cosine similarity of orientation-free DCT magnitudes (finds candidates only)"
                    .into()
            }
            Finding::CandidatesOnly => "与方向无关的 DCT 幅值的余弦相似度(仅用于查找候选)".into(),
            Finding::ColourDifference { delta_e } if english => {
                format!("mean colours differ by ΔE {delta_e:.1} (reported only)")
            }
            Finding::ColourDifference { delta_e } => {
                format!("平均颜色相差 ΔE {delta_e:.1}(仅供参考)")
            }
        }
    }
}

/// How the query is turned or mirrored, as the words of a summary.
pub fn orientation_words(orientation: Dihedral, lang: Lang) -> &'static str {
    match lang {
        Lang::En => orientation.describe(),
        Lang::Zh => match orientation {
            Dihedral::Identity => "未旋转",
            Dihedral::Rotate90 => "顺时针旋转 90°",
            Dihedral::Rotate180 => "旋转 180°",
            Dihedral::Rotate270 => "逆时针旋转 90°",
            Dihedral::Mirror => "镜像",
            Dihedral::MirrorRotate90 => "镜像后顺时针旋转 90°",
            Dihedral::MirrorRotate180 => "镜像后旋转 180°",
            Dihedral::MirrorRotate270 => "镜像后逆时针旋转 90°",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readings() -> Vec<Reading> {
        let transform = Transform {
            mirrored: true,
            rotation_degrees: 37.0,
            scale: 0.81,
        };
        vec![
            Reading::NotFound,
            Reading::WholePrint {
                orientation: Dihedral::MirrorRotate90,
            },
            Reading::SameRepeat { correlation: 0.87 },
            Reading::Together {
                orientation: Dihedral::Rotate180,
                local_matches: 17,
            },
            Reading::OneTransform {
                matches: 17,
                transform,
            },
            Reading::WholeDesign {
                local_matches: 23,
                carried: 17,
                transform,
            },
            Reading::PlacedAnew {
                local_matches: 23,
                groups: 4,
            },
        ]
    }

    fn findings() -> Vec<Finding> {
        vec![
            Finding::PlainChannel,
            Finding::HashBits {
                differing: 41,
                orientation: Dihedral::Rotate270,
                lattice_only: false,
            },
            Finding::HashBits {
                differing: 38,
                orientation: Dihedral::MirrorRotate180,
                lattice_only: true,
            },
            Finding::AboveBackground {
                mean: 0.83,
                background: 0.61,
            },
            Finding::StructureAboveBackground {
                similarity: 0.91,
                background: 0.34,
            },
            Finding::RepeatUnit {
                correlation: 0.74,
                background: 0.42,
            },
            Finding::NoRepeat,
            Finding::LocalMatches {
                consistent: 23,
                by_descriptor: 31,
                groups: 4,
                weight: 17.5,
                same_colours: 0.4,
                half_weight: 14.4,
                query_kinds: 211,
                reference_keypoints: 150,
            },
            Finding::CandidatesOnly,
            Finding::ColourDifference { delta_e: 12.5 },
        ]
    }

    /// The numbers in a sentence, in order: both languages must give the reader the same ones.
    fn numbers(sentence: &str) -> Vec<String> {
        sentence
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .map(|n| n.trim_matches('.'))
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn every_reading_and_finding_is_worded_in_both_languages_with_the_same_figures() {
        let sentences = readings()
            .iter()
            .map(|r| (r.sentence(Lang::En), r.sentence(Lang::Zh)))
            .chain(
                findings()
                    .iter()
                    .map(|f| (f.sentence(Lang::En), f.sentence(Lang::Zh))),
            )
            .collect::<Vec<_>>();
        for (english, chinese) in &sentences {
            let cjk = |c: char| ('\u{4e00}'..='\u{9fff}').contains(&c);
            assert!(!english.contains(cjk), "{english}");
            let words = chinese.replace("DCT", "").replace("ΔE", "");
            assert!(
                !words.contains(|c: char| c.is_ascii_alphabetic()),
                "{chinese}"
            );
            let (mut en, mut zh) = (numbers(english), numbers(chinese));
            // "256 bits" comes first in Chinese ("256 位中有 41 位").
            en.sort();
            zh.sort();
            assert_eq!(en, zh, "{english} | {chinese}");
        }
    }

    #[test]
    fn the_english_detail_is_the_finding_in_english() {
        let signal = Signal::new(
            "mean_colour",
            0.9,
            false,
            Finding::ColourDifference { delta_e: 3.0 },
        );
        assert_eq!(
            signal.detail,
            "mean colours differ by ΔE 3.0 (reported only)"
        );
        let json = serde_json::to_value(&signal).unwrap();
        assert_eq!(json["finding"]["kind"], "colour_difference");
        assert_eq!(json["finding"]["delta_e"], 3.0);
    }
}
