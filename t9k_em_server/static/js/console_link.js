// Forwards the 0.6.0b0 console link /em/web/#/folders/<node id>/ to the node's page.
(function () {
  var ui = document.documentElement.dataset.ui || "/ui";
  var m = location.hash.match(/^#\/folders\/([^/?#]+)/);
  location.replace(m ? ui + "/nodes/" + encodeURIComponent(decodeURIComponent(m[1])) : ui + "/");
})();
