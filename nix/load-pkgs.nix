# Loads a package set from a package source, using builtins only.
#
#   srcType  "path"    srcArgs = { path = "/abs/dir"; }           (a directory with default.nix)
#            "git"     srcArgs = { url; rev = "<40 hex>"; ref?; }  (builtins.fetchGit)
#            "nixpkgs" srcArgs = { url; sha256?; }                 (a channel/nixpkgs tarball)
#   importArgs  arguments for the set's top-level function; only those the
#               function declares are passed (a small set may take just `system`,
#               nixpkgs takes `system`, `config`, `overlays`, ...).
{ srcType, srcArgs, importArgs ? { } }:
let
  fetchers = {
    path = a: /. + a.path;
    git = a: builtins.fetchGit ({
      inherit (a) url rev;
    } // (if a ? ref && a.ref != null then { inherit (a) ref; } else { allRefs = true; }));
    nixpkgs = a: builtins.fetchTarball ({
      inherit (a) url;
    } // (if a ? sha256 && a.sha256 != null then { inherit (a) sha256; } else { }));
  };
  src =
    if fetchers ? ${srcType} then fetchers.${srcType} srcArgs
    else throw "load-pkgs: unknown srcType '${srcType}' (expected path, git or nixpkgs)";

  imported = import src;
  # nixpkgs gets an empty config and no overlays unless the caller says otherwise.
  defaults = { config = { }; overlays = [ ]; };
  wanted = defaults // importArgs;
  formals = builtins.functionArgs imported;
  accepted =
    if formals == { } then wanted
    else builtins.intersectAttrs formals wanted;
in
if builtins.isFunction imported then imported accepted else imported
