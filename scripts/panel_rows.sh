#!/usr/bin/env bash
# Markdown rows of the evaluation panel (sourced). panel_header prints the table head;
# panel_row NAME JSON one row from an eval-model line; panel_floor_row JSON the real-vs-real floor.
panel_jq='def r(n): if . == null then "-" else (. * pow(10; n) | round) / pow(10; n) end;'
panel_header() {
    echo "| model | FID cnn | FID mlp | KID cnn | KID mlp | precision / recall cnn | precision / recall mlp | coverage cnn / mlp | alignment cnn / mlp | mean / contrast / HF share |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
}
panel_row() {
    jq -r --arg name "$1" "$panel_jq"'.panel as $p | "| \($name) | \($p.cnn.fid | r(2)) | \($p.mlp.fid | r(2)) | \($p.cnn.kid | r(2)) ± \($p.cnn.kid_se | r(2)) | \($p.mlp.kid | r(2)) ± \($p.mlp.kid_se | r(2)) | \($p.cnn.precision | r(3)) / \($p.cnn.recall | r(3)) | \($p.mlp.precision | r(3)) / \($p.mlp.recall | r(3)) | \($p.cnn.coverage | r(3)) / \($p.mlp.coverage | r(3)) | \($p.cnn.alignment | r(3)) / \($p.mlp.alignment | r(3)) | \($p.pixels.mean | r(3)) / \($p.pixels.contrast | r(3)) / \($p.pixels.hf_share | r(4)) |"' <<<"$2"
}
panel_floor_row() {
    jq -r "$panel_jq"'.panel as $p | "| real vs real floor (\($p.n) training images) | \($p.cnn.fid_floor | r(2)) | \($p.mlp.fid_floor | r(2)) | \($p.cnn.kid_floor | r(2)) ± \($p.cnn.kid_se_floor | r(2)) | \($p.mlp.kid_floor | r(2)) ± \($p.mlp.kid_se_floor | r(2)) | \($p.cnn.precision_floor | r(3)) / \($p.cnn.recall_floor | r(3)) | \($p.mlp.precision_floor | r(3)) / \($p.mlp.recall_floor | r(3)) | \($p.cnn.coverage_floor | r(3)) / \($p.mlp.coverage_floor | r(3)) | \($p.cnn.alignment_floor | r(3)) / \($p.mlp.alignment_floor | r(3)) | \($p.pixels.floor.mean | r(3)) / \($p.pixels.floor.contrast | r(3)) / \($p.pixels.floor.hf_share | r(4)) (test set \($p.pixels.test.mean | r(3)) / \($p.pixels.test.contrast | r(3)) / \($p.pixels.test.hf_share | r(4))) |"' <<<"$1"
}
# panel_compare NAME_A JSON_A NAME_B JSON_B: which of the two is better on each panel metric (FID, KID:
# lower; precision, recall, coverage, alignment: higher; pixel statistics: nearer the test set's).
# KID counts as a tie within two standard errors of the difference.
panel_compare() {
    jq -rn --arg a "$1" --argjson A "$2" --arg b "$3" --argjson B "$4" '
      def side(d): if d < 0 then $a elif d > 0 then $b else "tie" end;
      def lower(x; y): side(x - y);
      def higher(x; y): side(y - x);
      def kid(s): ($A.panel[s].kid - $B.panel[s].kid) as $d
                  | (($A.panel[s].kid_se | . * .) + ($B.panel[s].kid_se | . * .) | sqrt) as $se
                  | if ($d | fabs) < 2 * $se then "tie" else side($d) end;
      def near(k): ($A.panel.pixels[k] - $A.panel.pixels.test[k] | fabs) as $x
                  | ($B.panel.pixels[k] - $B.panel.pixels.test[k] | fabs) as $y | side($x - $y);
      [ ["FID cnn", lower($A.panel.cnn.fid; $B.panel.cnn.fid)], ["FID mlp", lower($A.panel.mlp.fid; $B.panel.mlp.fid)],
        ["KID cnn", kid("cnn")], ["KID mlp", kid("mlp")],
        ["precision cnn", higher($A.panel.cnn.precision; $B.panel.cnn.precision)],
        ["recall cnn", higher($A.panel.cnn.recall; $B.panel.cnn.recall)],
        ["precision mlp", higher($A.panel.mlp.precision; $B.panel.mlp.precision)],
        ["recall mlp", higher($A.panel.mlp.recall; $B.panel.mlp.recall)],
        ["coverage cnn", higher($A.panel.cnn.coverage; $B.panel.cnn.coverage)],
        ["coverage mlp", higher($A.panel.mlp.coverage; $B.panel.mlp.coverage)],
        ["alignment cnn", higher($A.panel.cnn.alignment; $B.panel.cnn.alignment)],
        ["alignment mlp", higher($A.panel.mlp.alignment; $B.panel.mlp.alignment)],
        ["mean intensity", near("mean")], ["contrast", near("contrast")], ["HF share", near("hf_share")] ] as $rows
      | ($rows | map(select(.[1] == $a) | .[0]) | join(", ")) as $wa
      | ($rows | map(select(.[1] == $b) | .[0]) | join(", ")) as $wb
      | ($rows | map(select(.[1] == "tie") | .[0]) | join(", ")) as $wt
      | "- better for \($a): \(if $wa == "" then "none" else $wa end)\n- better for \($b): \(if $wb == "" then "none" else $wb end)\n- tied (KID within 2 standard errors): \(if $wt == "" then "none" else $wt end)"'
}
