-- The invoices, as the requirements give them. The CHECKs hold the
-- business rules, so a bad row cannot get in even from psql:
-- VAT is 15% of the subtotal rounded half-up to the cent (numeric
-- round() rounds half away from zero, which is half-up for positive
-- amounts), the total is subtotal + VAT, every amount is positive.
CREATE TABLE invoices (
	id		BIGSERIAL PRIMARY KEY,
	invoice_number	VARCHAR(50) NOT NULL UNIQUE,
	invoice_date	TIMESTAMPTZ NOT NULL,
	seller_name	VARCHAR(255) NOT NULL,
	buyer_name	VARCHAR(255) NOT NULL,
	subtotal	NUMERIC(12,2) NOT NULL,
	vat_amount	NUMERIC(12,2) NOT NULL,
	total_amount	NUMERIC(12,2) NOT NULL,
	created_at	TIMESTAMPTZ NOT NULL DEFAULT now(),
	CONSTRAINT invoices_amounts_positive
	    CHECK (subtotal > 0 AND vat_amount > 0 AND total_amount > 0),
	CONSTRAINT invoices_vat_15_percent
	    CHECK (vat_amount = round(subtotal * 15 / 100, 2)),
	CONSTRAINT invoices_total_is_sum
	    CHECK (total_amount = subtotal + vat_amount)
);
