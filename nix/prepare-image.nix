# Looks up packages by name in a package set and reports, as JSON data, what
# to build. Uses builtins only, so it works with nixpkgs and with the bundled
# set (nix/pkgs) alike. Package names arrive as a JSON string and are never
# spliced into Nix code.
#
#   nix-instantiate --eval --strict --json --read-write-mode prepare-image.nix \
#     --argstr srcType path --argstr srcArgs '{"path":"/abs/nix/pkgs"}' \
#     --argstr system x86_64-linux --argstr packages '["hello","xorg.xev"]'
#
# Result:
#   { "found": { "<requested name>": { "attr": "<resolved attribute path>",
#       "out": "<output path>", "drv": "<derivation path>", "output": "<output name>",
#       "name": "<pname or name>" } },
#     "missing": [ "<requested name>", ... ],
#     "builds": [ "<output path>", ... ] }
#
# `builds` is the list of found derivations themselves (JSON shows their
# output paths): `nix-build prepare-image.nix -A builds ... -o DIR/result`
# evaluates, builds and roots them in one Nix process, so no store path of a
# build is ever without a root (a `.drv` written by an evaluation that has
# ended is not rooted by anything).
#
# Lookup: the name is split on "." and each part is an attribute of the
# previous one ("xorg.xev"). When that fails, the first part is matched
# case-insensitively against the top-level names ("bashinteractive" ->
# bashInteractive; image names cannot carry upper case). A part that starts
# with a digit is also tried with a leading underscore ("7zz" -> _7zz, as
# nixpkgs names such attributes). Anything that is not a derivation, or throws
# while being evaluated, counts as missing.
{ srcType, srcArgs, system, packages }:
let
  pkgs = import ./load-pkgs.nix {
    inherit srcType;
    srcArgs = builtins.fromJSON srcArgs;
    importArgs = { inherit system; };
  };
  names = builtins.fromJSON packages;

  upper = [ "A" "B" "C" "D" "E" "F" "G" "H" "I" "J" "K" "L" "M" "N" "O" "P" "Q" "R" "S" "T" "U" "V" "W" "X" "Y" "Z" ];
  lower = [ "a" "b" "c" "d" "e" "f" "g" "h" "i" "j" "k" "l" "m" "n" "o" "p" "q" "r" "s" "t" "u" "v" "w" "x" "y" "z" ];
  toLower = builtins.replaceStrings upper lower;

  # Lower-cased top-level name -> real name (built lazily: only a miss forces
  # it). Where two names differ only in case, the first in sorted order wins.
  lowerNames = builtins.listToAttrs (map (n: { name = toLower n; value = n; })
    (builtins.attrNames pkgs));

  splitDots = s: builtins.filter builtins.isString (builtins.split "\\." s);

  # Does `set` have attribute `key`, without letting an evaluation error escape?
  has = set: key:
    let r = builtins.tryEval (builtins.isAttrs set && builtins.hasAttr key set);
    in r.success && r.value;

  # The key under which `part` is found in `set`, or null: the part itself,
  # else "_" + part when it starts with a digit.
  keyIn = set: part:
    if has set part then part
    else if builtins.match "[0-9].*" part != null && has set "_${part}" then "_${part}"
    else null;

  # Walks `parts` from `set`; { path = [ resolved keys ]; value } or null.
  walk = set: parts: acc:
    if parts == [ ] then { path = acc; value = set; }
    else
      let key = keyIn set (builtins.head parts);
      in if key == null then null
        else walk set.${key} (builtins.tail parts) (acc ++ [ key ]);

  # The same walk with the first part replaced by its case-insensitive match.
  walkCaseless = parts:
    let first = toLower (builtins.head parts);
        key = if lowerNames ? ${first} then lowerNames.${first}
              else if builtins.match "[0-9].*" first != null && lowerNames ? "_${first}" then lowerNames."_${first}"
              else null;
    in if key == null then null else walk pkgs ([ key ] ++ builtins.tail parts) [ ];

  # The attributes reported for a derivation, forced inside tryEval so that a
  # package that throws (broken, unfree, removed alias) counts as missing.
  describe = path: v:
    let
      r = builtins.tryEval (
        if builtins.isAttrs v && (v.type or null) == "derivation" then
          let info = {
            attr = builtins.concatStringsSep "." path;
            out = "${v.outPath}";
            drv = "${v.drvPath}";
            output = v.outputName or "out";
            name = v.pname or v.name;
          };
          in builtins.deepSeq info info
        else null);
    in if r.success then r.value else null;

  # { info = describe's attributes or null; value = the derivation }.
  lookup = name:
    let
      parts = splitDots name;
      valid = builtins.isString name && name != "" && !(builtins.elem "" parts);
      exact = if valid then walk pkgs parts [ ] else null;
      hit = if exact != null then exact else if valid then walkCaseless parts else null;
    in if hit == null then { info = null; value = null; }
      else { info = describe hit.path hit.value; inherit (hit) value; };

  results = map (name: { inherit name; } // lookup name) names;
  hits = builtins.filter (r: r.info != null) results;
in
{
  found = builtins.listToAttrs (map (r: { inherit (r) name; value = r.info; }) hits);
  missing = map (r: r.name) (builtins.filter (r: r.info == null) results);
  builds = map (r: r.value) hits;
}
