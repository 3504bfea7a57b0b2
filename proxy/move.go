package proxy

import "encoding/json"

// ObjectMove answers POST /object/move: a rename, metadata only.
func (s *Server) ObjectMove(r *request) error {
	f, err := parseBody(r.ctx, false)
	if err != nil {
		return err
	}
	p := f.moveParams()
	if f.err != nil {
		return f.err
	}
	if err := s.db.ObjectMove(ctxOf(r), s.settings(r), p); err != nil {
		return err
	}
	return writeJSON(r.ctx, messageBody("Successfully moved"))
}

// ObjectCopy answers POST /object/copy: a new row sharing the source's blob.
func (s *Server) ObjectCopy(r *request) error {
	f, err := parseBody(r.ctx, false)
	if err != nil {
		return err
	}
	p := copyParams{moveParams: f.moveParams(), CopyMetadata: true}
	if v := f.bool("copyMetadata"); v != nil {
		p.CopyMetadata = *v
	}
	if raw, ok := f.obj["metadata"]; ok && !isNull(raw) {
		if raw[0] != '{' {
			f.fail("body/metadata must be object")
		} else if !isJSONBText(raw) {
			f.fail("body/metadata" + notTextMessage)
		}
		p.Metadata = json.RawMessage(raw)
	}
	if f.err != nil {
		return f.err
	}
	p.Upsert = string(r.ctx.Request.Header.Peek("x-upsert")) == "true"
	p.UserMetadata = decodeXMetadata(r.ctx.Request.Header.Peek("x-metadata"))
	if p.UserMetadata != nil && !isJSONBText(p.UserMetadata) {
		return ErrMetadataNotText
	}
	o, err := s.db.ObjectCopy(ctxOf(r), s.settings(r), p)
	if err != nil {
		return err
	}
	b := appendJSONString([]byte(`{"Id":`), o.ID)
	b = appendJSONString(append(b, `,"Key":`...), o.BucketID+"/"+o.Name)
	b = append(b, ',')
	b = append(b, appendObjectRow(nil, &o)[1:]...) // the row's fields follow Id and Key
	return writeJSON(r.ctx, b)
}

// moveParams reads the body fields move and copy share.
func (f *fields) moveParams() moveParams {
	f.require("bucketId")
	f.require("sourceKey")
	f.require("destinationKey")
	return moveParams{
		Bucket:            deref(f.string("bucketId")),
		SourceKey:         deref(f.string("sourceKey")),
		DestinationKey:    deref(f.string("destinationKey")),
		DestinationBucket: f.string("destinationBucket"),
	}
}
