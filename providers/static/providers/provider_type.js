// A provider's settings depend on its type: picking another type reloads the page with that
// type's fields (?type=), so the fields shown are always the chosen type's.
"use strict";
{
  const type = document.getElementById("id_type");
  if (type) {
    type.addEventListener("change", () => {
      const url = new URL(window.location.href);
      url.searchParams.set("type", type.value);
      window.location.assign(url.toString());
    });
  }
}
