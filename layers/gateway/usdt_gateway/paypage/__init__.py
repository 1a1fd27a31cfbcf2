"""The hosted payment page (GET /pay/{publicId}): HTML rendered from the public order view, its
English and Chinese strings, and its static CSS and JavaScript (package files, served under
content-hashed names). See docs/payment-page.md."""
