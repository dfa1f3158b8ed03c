"""API documentation: the OpenAPI 3.1 document (built from the validation schemas) and the
Swagger UI page, served from locally installed assets."""
