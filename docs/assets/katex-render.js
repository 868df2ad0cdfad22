// KaTeX 0.19.1 (the npm package "katex", MIT licence: assets/katex/LICENSE): katex.min.js,
// katex.min.css, contrib/auto-render.min.js and the woff2 fonts of its dist/ folder.
// Typeset the math that pymdownx.arithmatex marked (\( \) inline, \[ \] display) with the
// KaTeX bundled in assets/katex: the site needs no network. Material's document$ fires on
// every page load, instant navigation included.
document$.subscribe(({ body }) => {
  for (const element of body.querySelectorAll(".arithmatex")) {
    renderMathInElement(element, {
      delimiters: [
        { left: "\\(", right: "\\)", display: false },
        { left: "\\[", right: "\\]", display: true },
      ],
      throwOnError: false,
    });
  }
});
