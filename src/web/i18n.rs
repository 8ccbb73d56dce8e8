//! The pages' words in English and Chinese. The browser's `Accept-Language` picks zh-CN when it
//! asks for Chinese; a switch on every page sets a cookie that wins over the header.

use std::collections::BTreeMap;

use axum::http::HeaderMap;

pub use crate::lang::Lang;

/// The pages' side of a language: which one a request asks for, and the pages' words in it.
impl Lang {
    /// The cookie set by the switch, else the first of the browser's languages we have.
    pub fn of_request(headers: &HeaderMap) -> Lang {
        if let Some(lang) = super::cookie(headers, "hx_lang").and_then(|v| Lang::parse(&v)) {
            return lang;
        }
        let accepted = headers
            .get(axum::http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        for item in accepted.split(',') {
            let tag = item
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if tag.starts_with("zh") {
                return Lang::Zh;
            }
            if tag.starts_with("en") {
                return Lang::En;
            }
        }
        Lang::En
    }

    /// Every word of the pages in this language, by key.
    pub fn words(self) -> BTreeMap<&'static str, &'static str> {
        WORDS
            .iter()
            .map(|(key, en, zh)| (*key, if self == Lang::En { *en } else { *zh }))
            .collect()
    }
}

/// (key, English, Chinese).
const WORDS: &[(&str, &str, &str)] = &[
    ("app", "huaxing print registry", "花型版权登记"),
    ("nav", "Main", "主导航"),
    ("nav_search", "Search", "检索"),
    ("nav_desk", "Registration desk", "登记台"),
    ("nav_compare", "Compare", "比对"),
    ("language", "Language", "语言"),
    ("signed_in_as", "Signed in as", "当前用户"),
    ("sign_in", "Sign in", "登录"),
    ("sign_out", "Sign out", "退出"),
    ("token", "API token", "访问令牌"),
    (
        "token_help",
        "Ask your administrator for a token. It is kept in a cookie for this site only.",
        "请向管理员索取令牌。令牌仅保存在本站的 Cookie 中。",
    ),
    ("bad_token", "That token is not valid.", "令牌无效。"),
    (
        "not_allowed",
        "Your role may not use this page.",
        "您的角色无权使用此页面。",
    ),
    (
        "search_title",
        "Is this print a copy?",
        "这个花型是抄袭的吗?",
    ),
    (
        "search_help",
        "Drop one image or many here, or choose files. One image shows its best matches; several are checked as a batch.",
        "把一张或多张图片拖到这里,或选择文件。一张图显示最相似的登记花型;多张图按批次检查。",
    ),
    ("choose_files", "Choose images", "选择图片"),
    ("drop_here", "Drop images here", "将图片拖到此处"),
    ("searching", "Searching…", "检索中…"),
    ("checked", "checked", "已检查"),
    ("of", "of", "/"),
    (
        "no_match",
        "No registered pattern is similar.",
        "没有相似的登记花型。",
    ),
    ("copy", "Copy", "抄袭"),
    ("not_copy", "Not a copy", "非抄袭"),
    ("score", "Score", "相似度"),
    ("verdict", "Verdict", "结论"),
    ("registration_number", "Registration number", "登记号"),
    ("title", "Title", "名称"),
    ("owner", "Owner", "权利人"),
    ("reference", "Reference", "编号"),
    ("status", "Status", "状态"),
    ("registered_at", "Registered at (UTC)", "登记时间(UTC)"),
    ("file", "File", "文件"),
    ("best_match", "Best match", "最佳匹配"),
    ("export_csv", "Export as CSV", "导出 CSV"),
    ("open", "Open", "打开"),
    ("compare_with", "Compare side by side", "并排比对"),
    ("error", "Error", "错误"),
    ("pattern", "Pattern", "花型"),
    ("size", "Size", "尺寸"),
    ("similar", "Similar registered patterns", "相似的登记花型"),
    ("evidence", "Evidence", "证据"),
    (
        "certificate",
        "Registration certificate (printable)",
        "登记证书(可打印)",
    ),
    ("proof", "Inclusion proof (JSON)", "存证证明(JSON)"),
    ("register", "Register a pattern", "登记花型"),
    ("image", "Image", "图片"),
    ("submit_register", "Register", "登记"),
    ("registered_ok", "Registered", "已登记"),
    (
        "held",
        "Held for review: it looks like a copy of",
        "待审核:疑似抄袭",
    ),
    ("review_queue", "Review queue", "审核队列"),
    (
        "queue_empty",
        "Nothing waits for review.",
        "没有待审核的登记。",
    ),
    ("reason", "Reason", "理由"),
    ("accept", "Accept", "通过"),
    ("reject", "Reject", "驳回"),
    (
        "public_domain_filing",
        "File as public domain",
        "登记为公有领域",
    ),
    ("pattern_id", "Pattern id", "花型 ID"),
    ("file_public_domain", "File", "提交"),
    ("done", "Done", "完成"),
    ("compare_title", "Compare two prints", "比对两个花型"),
    (
        "compare_help",
        "Choose two image files, or give registered pattern ids. The report outlines each matched region on both sides.",
        "选择两张图片,或填写登记花型 ID。报告会在两侧标出每个匹配区域。",
    ),
    (
        "first_print",
        "First print (the questioned one)",
        "第一幅(被质疑的花型)",
    ),
    (
        "second_print",
        "Second print (the registered one)",
        "第二幅(已登记的花型)",
    ),
    ("or_id", "or registered pattern id", "或登记花型 ID"),
    ("make_report", "Make the report", "生成报告"),
    ("report_title", "Comparison report", "比对报告"),
    ("why", "Why", "理由说明"),
    ("regions", "Matched regions", "匹配区域"),
    ("region", "Region", "区域"),
    ("turn", "Turn", "旋转"),
    ("scale", "Scale", "缩放"),
    ("mirrored", "Mirrored", "镜像"),
    ("matches", "Matching points", "匹配点"),
    ("yes", "yes", "是"),
    ("no", "no", "否"),
    ("palette", "Palette mapping", "配色对应"),
    (
        "palette_help",
        "Where parts of the two prints match, the ink under each matched part of the first and the ink under the same part of the second pair up: how a recolouring maps one palette to the other. Agreement is the share of the first ink's samples that found the second.",
        "在两幅图相互匹配的部位,第一幅图每处的颜色与第二幅图同一部位的颜色配成一对,显示改色如何把一套配色换成另一套。一致率是第一种颜色的采样中落在第二种颜色上的比例。",
    ),
    ("agreement", "Agreement", "一致率"),
    (
        "no_palette",
        "No parts of the prints match, so no ink can be paired.",
        "两幅图没有相互匹配的部位,无法对应颜色。",
    ),
    ("signals", "Signals", "判据"),
    ("signal_whole_print", "Whole print", "整幅图案"),
    ("signal_local_features", "Local features", "局部特征"),
    ("signal_repeat_unit", "Repeat unit", "循环单元"),
    ("signal_lightness_hash", "Lightness hash", "明暗哈希"),
    ("signal_structure_hash", "Structure hash", "结构哈希"),
    ("signal_global_vector", "Global vector", "全局向量"),
    ("signal_mean_colour", "Mean colour", "平均颜色"),
    ("registration", "Registration and proof", "登记与存证"),
    (
        "not_registered",
        "Not registered: an uploaded file.",
        "未登记:上传的文件。",
    ),
    ("leaf", "Log entry", "日志条目"),
    ("tree_size", "Log size", "日志大小"),
    ("root_hash", "Root hash", "根哈希"),
    ("signed_at", "Head signed at", "签名时间"),
    (
        "download_html",
        "Download this report (HTML)",
        "下载报告(HTML)",
    ),
    ("download_png", "Download as PNG", "下载 PNG 图片"),
    ("whole_print", "The whole print", "整幅图案"),
    ("orientation", "Orientation", "方向"),
    (
        "explain_copy",
        "The score reaches the copy threshold: the second print's design is found in the first.",
        "相似度达到抄袭阈值:第二幅的设计出现在第一幅中。",
    ),
    (
        "explain_not_copy",
        "The score stays below the copy threshold: the evidence is not enough to call it a copy.",
        "相似度低于抄袭阈值:证据不足以认定抄袭。",
    ),
    ("working", "Working…", "处理中…"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_languages_have_every_word_and_browsers_choose() {
        for (key, en, zh) in WORDS {
            assert!(!en.is_empty() && !zh.is_empty(), "{key}");
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            "accept-language",
            "zh-CN,zh;q=0.9,en;q=0.8".parse().unwrap(),
        );
        assert_eq!(Lang::of_request(&headers), Lang::Zh);
        headers.insert("cookie", "hx_lang=en".parse().unwrap());
        assert_eq!(Lang::of_request(&headers), Lang::En);
        assert_eq!(Lang::of_request(&HeaderMap::new()), Lang::En);
    }
}
